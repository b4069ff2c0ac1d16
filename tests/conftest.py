"""The fixtures every test package shares: the project's own policy compiled once, a fresh store, an installation.

The helpers behind them (and everything else tests share) are in tests/support.py: import from there, never from here.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kodex.rules.loading import load_policy
from kodex.rules.ruleset import Ruleset
from kodex.services.setup import Workspace
from tests.support import POLICY, fresh_store, install, installation_env


@pytest.fixture(scope="session")
def ruleset() -> Ruleset:
    return Ruleset(load_policy(POLICY))


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    """A fresh store of the test's own on the engine CI chose (tests/support.py: fresh_store)."""
    with fresh_store(tmp_path) as url:
        yield url


@pytest.fixture
def kodex_env(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Environment for a kodex installation in tmp_path on the chosen engine (set in os.environ too)."""
    return installation_env(tmp_path, database_url, monkeypatch)


@pytest.fixture
def workspace(kodex_env: dict[str, str], ruleset: Ruleset) -> Iterator[Workspace]:
    """An initialised installation (`kodex init`) whose libraries have agreements: store, master key, config."""
    work = install(ruleset)
    yield work
    work.engine.dispose()
