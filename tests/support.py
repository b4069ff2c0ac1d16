"""What every test package shares: paths, a fresh store, an installation, the kodex command, an HTTP client.

- the store: `fresh_store` (an SQLite file or a PostgreSQL schema of its own, on the engine CI chose);
- an installation: `installation_env` (its KODEX_* variables) and `install` (`kodex init` and the agreements),
  `fresh_installation` (the same on a fresh store, for a module-scoped fixture);
- the command line: `kodex` / `ok` in this process (Typer's runner), `kodex_process` / `start_kodex` as a child;
- the service: `client` (a TestClient with a bearer token), `free_port` and `wait_for_health` for `kodex serve`.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from typer.testing import CliRunner, Result

from kodex.api.cli import app
from kodex.config import load_settings
from kodex.rules.ruleset import Ruleset
from kodex.services.setup import Workspace, initialise, open_workspace
from kodex.services.tenants import Agreement, onboard

ROOT = Path(__file__).resolve().parents[1]
POLICY = ROOT / "policies.yaml"
SAMPLE = ROOT / "samples" / "readers.jsonl"
SHARED = ROOT.parent / "shared"
KODEX = Path(sys.executable).with_name("kodex")

# -- the store, on the engine CI chose ---------------------------------------------------------
#
# CI runs the suite twice: KODEX_DATABASE_URL names SQLite, then PostgreSQL. A test that
# needs a store gets a fresh one on that engine: an SQLite file of its own, or a PostgreSQL
# schema of its own (dropped afterwards), so tests never see each other's data.

ENGINE_URL = os.environ.get("KODEX_DATABASE_URL", "sqlite://")


def on_postgresql() -> bool:
    return ENGINE_URL.startswith("postgresql")


@contextmanager
def fresh_store(tmp_path: Path, name: str = "kodex") -> Iterator[str]:
    """A fresh store's URL on the engine CI chose: an SQLite file, or a PostgreSQL schema dropped afterwards."""
    if not on_postgresql():
        yield f"sqlite:///{tmp_path / f'{name}.sqlite3'}"
        return
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(ENGINE_URL)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in ENGINE_URL else "?"
    try:
        yield f"{ENGINE_URL}{separator}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


# -- an installation -----------------------------------------------------------------------------


def installation_env(where: Path, database_url: str, patch: pytest.MonkeyPatch) -> dict[str, str]:
    """Environment for a kodex installation under `where` on `database_url`, set through `patch` (os.environ too)."""
    env = {
        "KODEX_HOME": str(where / "home"),
        "KODEX_DATABASE_URL": database_url,
        "KODEX_MASTER_KEY_FILE": str(where / "home" / "master.key"),
    }
    for name, value in env.items():
        patch.setenv(name, value)
    patch.delenv("KODEX_CONFIG", raising=False)
    patch.delenv("KODEX_POLICY", raising=False)
    return env


# Every library of the policy onboarded with a data-processing agreement: without one it takes no personal data.
AGREEMENT = ("libraries", "agreement", "svkpk", "kntb", "zdirec", "--signed", "2026-01-05", "--reference", "DPA-T-1")


def agree_all(work: Workspace, ruleset: Ruleset) -> None:
    """Record a data-processing agreement for every library of the policy (what `kodex libraries agreement` does)."""
    agree(work, ruleset, ruleset.libraries)


def agree(work: Workspace, ruleset: Ruleset, libraries: Iterable[str]) -> None:
    """Record the test agreement (signed 5 Jan 2026, DPA-T-1) for each of `libraries`."""
    for library in libraries:
        onboard(work.engine, ruleset, library, Agreement(date(2026, 1, 5), "DPA-T-1"))


def install(
    ruleset: Ruleset, *, agreements: Iterable[str] | None = None, configure: Callable[[Path], None] | None = None
) -> Workspace:
    """`kodex init` in the installation the KODEX_* variables name, then `configure` (given the config file `init`
    wrote, to edit before the store is opened), with the agreements of `agreements` (default: every library of the
    policy) recorded: its workspace, whose engine the caller disposes of."""
    initialise(load_settings(), ruleset)
    if configure is not None:
        configure(load_settings().config_file)
    work = open_workspace(load_settings())
    agree(work, ruleset, ruleset.libraries if agreements is None else agreements)
    return work


@contextmanager
def fresh_installation(
    where: Path,
    ruleset: Ruleset,
    *,
    agreements: Iterable[str] | None = None,
    configure: Callable[[Path], None] | None = None,
) -> Iterator[tuple[Workspace, pytest.MonkeyPatch]]:
    """A fresh store and installation under `where`, for a module-scoped fixture (function-scoped ones use the
    `workspace` fixture): the KODEX_* variables set while it lasts, the store dropped afterwards. Yields the
    workspace (`install`) and the MonkeyPatch that set them, for more of the same."""
    with fresh_store(where) as url, pytest.MonkeyPatch.context() as patch:
        installation_env(where, url, patch)
        work = install(ruleset, agreements=agreements, configure=configure)
        try:
            yield work, patch
        finally:
            work.engine.dispose()


@dataclass
class Installation:
    """An installation's workspace, its HTTP service and tokens of its users by a name the test gives them."""

    work: Workspace
    app: FastAPI
    tokens: dict[str, str]

    def client(self, who: str) -> TestClient:
        """A client of the service sending `who`'s token."""
        return client(self.app, self.tokens[who])


# -- the command line ----------------------------------------------------------------------------

runner = CliRunner()


def kodex(*args: str, stdin: str | None = None) -> Result:
    """`kodex ARGS` run in this process (its patches apply), with `stdin` as its standard input."""
    return runner.invoke(app, list(args), input=stdin)


def ok(*args: str, stdin: str | None = None) -> Result:
    """`kodex ARGS` in this process, which must exit 0 (else the test fails showing its output)."""
    result = kodex(*args, stdin=stdin)
    assert result.exit_code == 0, result.output
    return result


def kodex_command() -> list[str]:
    found = KODEX if KODEX.exists() else shutil.which("kodex")
    assert found is not None, "the kodex command is not installed in this environment"
    return [str(found)]


def child_env(kodex_env: Mapping[str, str], **extra: str) -> dict[str, str]:
    """This process's environment with the installation's variables (and `extra`), without a config or policy."""
    env = {**os.environ, **kodex_env, **extra}
    env.pop("KODEX_CONFIG", None)
    env.pop("KODEX_POLICY", None)
    return env


def kodex_process(
    args: Iterable[str], env: Mapping[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """The installed `kodex ARGS` run as a child process in `env`, to its end."""
    return subprocess.run(
        [*kodex_command(), *args], env=dict(env), capture_output=True, text=True, timeout=timeout, check=False
    )


def ok_process(args: Iterable[str], env: Mapping[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`kodex_process`, which must exit 0 (else the test fails showing its stderr)."""
    done = kodex_process(args, env, timeout)
    assert done.returncode == 0, done.stderr
    return done


def start_kodex(args: Iterable[str], env: Mapping[str, str]) -> subprocess.Popen[str]:
    """The installed `kodex ARGS` started as a child process in `env` (stdout and stderr piped)."""
    return subprocess.Popen(
        [*kodex_command(), *args], env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


# -- the HTTP service ----------------------------------------------------------------------------


def client(application: FastAPI, token: str | None = None, *, raise_server_exceptions: bool = False) -> TestClient:
    """A test client of `application` sending `Authorization: Bearer <token>` (none without a token)."""
    opened = TestClient(application, raise_server_exceptions=raise_server_exceptions)
    if token is not None:
        opened.headers["Authorization"] = f"Bearer {token}"
    return opened


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_health(base: str, process: subprocess.Popen[bytes] | subprocess.Popen[str]) -> None:
    """Wait until `kodex serve` at `base` (http://host:port) answers GET /health, failing if it stops or takes 60 s."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, "kodex serve stopped"
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise AssertionError("kodex serve did not answer GET /health within 60 s")
