"""What kodex keeps on disk is readable by its owner only, whatever the umask (issue 16).

"The SQLite database with its -wal/-shm, the config and the kodex home are created readable by their
owner only (0600 files, 0700 folder), whatever the umask; `kodex init` tightens existing ones and says so."
The store is an SQLite file here whatever engine CI chose: these are the files of the embedded installation.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import text

from kodex.config import Settings, load_settings
from kodex.rules.ruleset import Ruleset
from kodex.services.setup import initialise
from kodex.store.database import connect
from tests.support import installation_env


@contextmanager
def umask(mask: int) -> Iterator[None]:
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.fixture
def embedded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The settings of an embedded installation (an SQLite file) in tmp_path/home, not yet initialised."""
    installation_env(tmp_path, f"sqlite:///{tmp_path / 'home' / 'kodex.sqlite3'}", monkeypatch)
    return load_settings()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def database(settings: Settings) -> Path:
    return settings.home / "kodex.sqlite3"


def test_kodex_init_creates_the_home_key_config_and_database_readable_only_by_their_owner_under_umask_0(
    embedded: Settings, ruleset: Ruleset
) -> None:
    with umask(0o000):
        said = initialise(embedded, ruleset)

    assert mode(embedded.home) == 0o700
    for path in (embedded.master_key_file, embedded.config_file, database(embedded)):
        assert mode(path) == 0o600, path
    assert any("readable only by you" in line and str(embedded.config_file) in line for line in said)


def test_the_write_ahead_log_a_later_run_creates_is_readable_only_by_its_owner_under_umask_0(
    embedded: Settings, ruleset: Ruleset
) -> None:
    with umask(0o000):
        initialise(embedded, ruleset)
        engine = connect(embedded.database_url)
        try:
            with engine.begin() as connection:  # a writer: SQLite creates the -wal and -shm files now
                connection.execute(text("CREATE TABLE scratch (x INTEGER)"))
                companions = [database(embedded).with_name(f"kodex.sqlite3{tail}") for tail in ("-wal", "-shm")]
                assert all(path.exists() for path in companions)
                assert [mode(path) for path in companions] == [0o600, 0o600]
        finally:
            engine.dispose()


def test_kodex_init_tightens_what_it_finds_readable_by_others_and_says_so(embedded: Settings, ruleset: Ruleset) -> None:
    initialise(embedded, ruleset)
    loose = [embedded.master_key_file, embedded.config_file, database(embedded)]
    for path in loose:
        path.chmod(0o644)
    embedded.home.chmod(0o755)

    said = initialise(embedded, ruleset)

    assert mode(embedded.home) == 0o700
    assert [mode(path) for path in loose] == [0o600, 0o600, 0o600]
    (line,) = [line for line in said if "tightened" in line]
    assert all(str(path) in line for path in (embedded.home, *loose))
    assert not [line for line in initialise(embedded, ruleset) if "tightened" in line]  # nothing left to tighten
