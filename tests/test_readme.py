"""The README's examples run as written: each ```sh block, in order, against one fresh installation.

The blocks share a working folder (holding `samples/` and the `.venv` these tests run in), a fresh store and the
shell variables they set. The HTTP session runs against a real `kodex serve` on a free local port, started here;
`K` names its /v1. A block preceded by `<!-- not run: why -->` is skipped, saying why. curl fails on an HTTP
error status here (--fail-with-body), so an example that answers 404 fails its block.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import ROOT, free_port, fresh_store, start_kodex, wait_for_health

README = ROOT / "README.md"
BLOCK = re.compile(r"^```sh\n(.*?)^```", re.MULTILINE | re.DOTALL)
NOT_RUN = re.compile(r"<!-- not run: (.+?) -->\s*$")
TEST_COMMAND = "<!-- test-command -->"  # the README's test command: CI runs it, and it runs these tests
HEADING = re.compile(r"^#+ (.+)$", re.MULTILINE)
FENCED = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)

# Sourced before each block: the variables the blocks before it set, an error stops the block naming its command.
PRELUDE = """set -a
[ -f "$STATE" ] && . "$STATE"
set -eo pipefail
curl() { command curl --fail-with-body "$@" || { code=$?; echo "README command failed (exit $code): curl $*" >&2; exit $code; }; }
trap 'echo "README command failed (exit $?): $BASH_COMMAND" >&2' ERR
"""
EPILOGUE = '\nexport -p > "$STATE"\n'


@dataclass(frozen=True)
class Block:
    name: str
    script: str
    not_run: str | None


def blocks() -> list[Block]:
    text = README.read_text(encoding="utf-8")
    found = []
    for match in BLOCK.finditer(text):
        before = text[: match.start()]
        headings = HEADING.findall(FENCED.sub("", before))  # a shell comment in a block is no heading
        heading = headings[-1] if headings else "README"
        first = match.group(1).splitlines()[0]
        comment = first.split("#", 1)[1].strip() if "#" in first else first[:40]
        marker = before.rstrip("\n").rsplit("\n", 1)[-1]
        skip = NOT_RUN.search(marker)
        why = (
            skip.group(1)
            if skip
            else "the test command itself (CI runs it; it runs these tests)"
            if TEST_COMMAND in marker
            else None
        )
        found.append(Block(f"{len(found) + 1:02d} {heading}: {comment}", match.group(1), why))
    return found


BLOCKS = blocks()


@dataclass
class Session:
    folder: Path
    env: dict[str, str]


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    """A working folder as a new user's clone would be, a fresh installation, and `kodex serve` on a free port."""
    folder = tmp_path_factory.mktemp("readme")
    (folder / "samples").symlink_to(ROOT / "samples")
    (folder / "policies.yaml").symlink_to(ROOT / "policies.yaml")
    (folder / ".venv").symlink_to(Path(sys.prefix))
    with fresh_store(folder) as url:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("KODEX_")},
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "KODEX_HOME": str(folder / "kodex-home"),
            "KODEX_DATABASE_URL": url,
            "KODEX_MASTER_KEY_FILE": str(folder / "kodex-home" / "master.key"),
            "STATE": str(folder / ".readme-state"),
        }
        port = free_port()
        env["K"] = f"http://127.0.0.1:{port}/v1"
        yield Session(folder, env)


@pytest.fixture(scope="module")
def server(session: Session) -> Iterator[None]:
    """`kodex serve` on the session's port (once `kodex init` has run), stopped at the end."""
    port = session.env["K"].rsplit(":", 1)[1].split("/")[0]
    process = start_kodex(["serve", "--no-scheduler", "--port", port], session.env)
    try:
        wait_for_health(f"http://127.0.0.1:{port}", process)
        yield
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.mark.parametrize("block", BLOCKS, ids=[b.name for b in BLOCKS])
def test_the_readme_example_runs_as_written(block: Block, session: Session, request: pytest.FixtureRequest) -> None:
    if block.not_run:
        pytest.skip(f"not run: {block.not_run}")
    if "$K" in block.script:
        request.getfixturevalue("server")
    done = subprocess.run(
        ["bash", "-c", PRELUDE + block.script + EPILOGUE],
        cwd=session.folder, env=session.env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    printed = done.stdout if len(done.stdout) <= 4000 else f"…{done.stdout[-4000:]}"
    assert done.returncode == 0, f"{block.name}\n--- stdout (its end)\n{printed}\n--- stderr\n{done.stderr}"
