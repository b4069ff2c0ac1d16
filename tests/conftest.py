"""Shared by every test package: the project's own policy, compiled once."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from kodex.config import load_settings
from kodex.rules.loading import load_policy
from kodex.rules.ruleset import Ruleset
from kodex.services.setup import Workspace, initialise, open_workspace
from kodex.services.tenants import Agreement, onboard

ROOT = Path(__file__).resolve().parents[1]
POLICY = ROOT / "policies.yaml"
SHARED = ROOT.parent / "shared"


@pytest.fixture(scope="session")
def ruleset() -> Ruleset:
    return Ruleset(load_policy(POLICY))


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


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    with fresh_store(tmp_path) as url:
        yield url


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


@pytest.fixture
def kodex_env(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Environment for a kodex installation in tmp_path on the chosen engine (set in os.environ too)."""
    return installation_env(tmp_path, database_url, monkeypatch)


# Every library of the policy onboarded with a data-processing agreement: without one it takes no personal data.
AGREEMENT = ("libraries", "agreement", "svkpk", "kntb", "zdirec", "--signed", "2026-01-05", "--reference", "DPA-T-1")


def agree_all(work: Workspace, ruleset: Ruleset) -> None:
    """Record a data-processing agreement for every library of the policy (what `kodex libraries agreement` does)."""
    for library in ruleset.libraries:
        onboard(work.engine, ruleset, library, Agreement(date(2026, 1, 5), "DPA-T-1"))


@pytest.fixture
def workspace(kodex_env: dict[str, str], ruleset: Ruleset) -> Iterator[Workspace]:
    """An initialised installation (`kodex init`) whose libraries have agreements: store, master key, config."""
    settings = load_settings()
    initialise(settings, ruleset)
    work = open_workspace(settings)
    agree_all(work, ruleset)
    yield work
    work.engine.dispose()
