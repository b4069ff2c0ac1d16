"""`kodex init` and the checks every command that needs the store makes first."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine

from retention.config import BATCH_SIZE, Settings
from rules.ruleset import Ruleset
from store.crypto import MasterKey
from store.database import connect, ensure_master_key, open_store, sync_libraries, upgrade, verify_master_key

__all__ = ["Workspace", "initialise", "open_workspace"]


@dataclass(frozen=True)
class Workspace:
    engine: Engine
    master: MasterKey
    settings: Settings


def initialise(settings: Settings, ruleset: Ruleset) -> list[str]:
    """Create what the installation needs and is missing; say where each piece is. Safe to run again."""
    said: list[str] = []
    if settings.embedded or settings.home in (settings.master_key_file.parent, settings.config_file.parent):
        settings.home.mkdir(parents=True, exist_ok=True)
    key_file = settings.master_key_file
    if key_file.exists():
        said.append(f"master key   {key_file} (kept; already there)")
    else:
        key_file.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(MasterKey.generate())
        said.append(f"master key   {key_file} (created, readable only by you; back it up: without it the data is lost)")
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
        settings.config_file.write_text(_config_text(settings), encoding="utf-8")
        said.append(
            f"config       {settings.config_file} (created: nightly runs at {settings.schedule.time:%H:%M} local time)"
        )
    engine.dispose()
    return said


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
    )


def open_workspace(settings: Settings) -> Workspace:
    """The store and the master key, checked before anything is touched (StoreNotReady, MasterKeyError)."""
    master = MasterKey.load(Path(settings.master_key_file))
    engine = open_store(settings.database_url)
    verify_master_key(engine, master)
    return Workspace(engine, master, settings)
