"""`kodex init` and the checks every command that needs the store makes first.

What `kodex init` creates is readable by its owner only, whatever the umask: the kodex home 0700, the master
key, the config file and the SQLite database 0600 (SQLite gives its -wal and -shm files the database file's
mode, store.database). Run again, it tightens any of them found looser, and says so.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from kodex.config import BATCH_SIZE, Settings
from kodex.rules.ruleset import Ruleset
from kodex.store.crypto import MasterKey
from kodex.store.database import (
    Engine,
    connect,
    ensure_master_key,
    open_store,
    sqlite_file,
    sync_libraries,
    upgrade,
    verify_master_key,
)

__all__ = ["Workspace", "initialise", "open_workspace"]


@dataclass(frozen=True)
class Workspace:
    engine: Engine
    master: MasterKey
    settings: Settings


def initialise(settings: Settings, ruleset: Ruleset) -> list[str]:
    """Create what the installation needs and is missing; say where each piece is. Safe to run again."""
    said: list[str] = []
    owned: list[tuple[Path, int]] = []  # what kodex keeps, and the owner-only mode it must have
    if settings.embedded or settings.home in (settings.master_key_file.parent, settings.config_file.parent):
        settings.home.parent.mkdir(parents=True, exist_ok=True)
        settings.home.mkdir(mode=_FOLDER, exist_ok=True)
        owned.append((settings.home, _FOLDER))
    key_file = settings.master_key_file
    if key_file.exists():
        said.append(f"master key   {key_file} (kept; already there)")
    else:
        key_file.parent.mkdir(parents=True, exist_ok=True)
        _write_owner_only(key_file, MasterKey.generate())
        said.append(f"master key   {key_file} (created, readable only by you; back it up: without it the data is lost)")
    owned.append((key_file, _FILE))
    database = sqlite_file(settings.database_url)
    if database is not None:
        owned += [(database.with_name(database.name + tail), _FILE) for tail in ("", "-wal", "-shm")]
    tightened, left = _tighten(owned)  # before the store is opened: its -wal and -shm take the database's mode
    master = MasterKey.load(key_file)
    engine = connect(settings.database_url)
    upgrade(engine, master)
    created = ensure_master_key(engine, master)
    sync_libraries(engine, [(lib.id, lib.library.name, lib.library.time_zone) for lib in ruleset.libraries.values()])
    where = engine.url.render_as_string(hide_password=True)
    said.append(
        f"database     {where} ({'set up' if created else 'up to date'}; libraries: {', '.join(ruleset.libraries)})"
    )
    if settings.config_file.exists():
        said.append(f"config       {settings.config_file} (kept; already there)")
    else:
        settings.config_file.parent.mkdir(parents=True, exist_ok=True)
        _write_owner_only(settings.config_file, _config_text(settings).encode())
        said.append(
            f"config       {settings.config_file} (created, readable only by you: nightly runs at "
            f"{settings.schedule.time:%H:%M} local time)"
        )
    owned.append((settings.config_file, _FILE))
    said.append(f"recordings   {_folders(settings)} ([recordings] in the config: a purge deletes files there only)")
    engine.dispose()
    again, still = _tighten(owned)
    tightened, left = tightened + [p for p in again if p not in tightened], [p for p in still if p not in left] + left
    if tightened:
        said.append(f"permissions  tightened to owner-only: {', '.join(str(p) for p in tightened)}")
    if left:
        said.append(f"permissions  could not be tightened (not yours?): {', '.join(str(p) for p in left)}")
    return said


_FILE, _FOLDER = 0o600, 0o700  # owner-only: read and write (and enter) for the owner, nothing for anyone else


def _write_owner_only(path: Path, content: bytes) -> None:
    """A new file, 0600 from its creation on (os.open's mode; fchmod in case the umask took more)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _FILE)
    with os.fdopen(descriptor, "wb") as handle:
        os.fchmod(handle.fileno(), _FILE)
        handle.write(content)


def _tighten(owned: list[tuple[Path, int]]) -> tuple[list[Path], list[Path]]:
    """Make each existing path owner-only (no bits for group and others); those changed, and those that failed."""
    tightened, left = [], []
    for path, mode in owned:
        try:
            current = stat.S_IMODE(path.stat().st_mode)
        except FileNotFoundError:
            continue
        if current & 0o077 or current & mode != mode:
            try:
                path.chmod(mode)
                tightened.append(path)
            except OSError:
                left.append(path)
    return tightened, left


def _folders(settings: Settings) -> str:
    recordings = settings.recordings
    own = "".join(f"; {library}: {folder}" for library, folder in sorted(recordings.libraries.items()))
    return f"{recordings.root}/<library>{own}"


def _config_text(settings: Settings) -> str:
    return (
        "# kodex configuration; KODEX_* environment variables override these keys.\n"
        f'# database_url = "{settings.database_url}"\n'
        f'# master_key_file = "{settings.master_key_file}"\n'
        f"# batch_size = {BATCH_SIZE}\n"
        "\n"
        "[schedule]\n"
        f"time = \"{settings.schedule.time:%H:%M}\"  # each library's nightly run, in the library's time zone\n"
        '# libraries = { kntb = "03:30" }\n'
        "\n"
        "[recordings]\n"
        f'root = "{settings.recordings.root}"  # each library\'s camera recordings lie in root/<library id>\n'
        '# libraries = { svkpk = "/srv/cameras/plzen" }  # a library\'s own folder instead\n'
    )


def open_workspace(settings: Settings) -> Workspace:
    """The store and the master key, checked before anything is touched (StoreNotReady, MasterKeyError)."""
    master = MasterKey.load(Path(settings.master_key_file))
    engine = open_store(settings.database_url)
    verify_master_key(engine, master)
    return Workspace(engine, master, settings)
