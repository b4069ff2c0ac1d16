"""Opening the store: the engine, its migrations, and the checks before any work.

The embedded default is an SQLite file (WAL, foreign keys on, a busy timeout
so concurrent processes wait rather than fail); PostgreSQL through
KODEX_DATABASE_URL (psycopg 3). The schema is managed by Alembic
(store/migrations); `kodex init` upgrades it, every other command refuses a
store that is missing or behind, saying which command fixes it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, insert, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DisconnectionError, OperationalError

from kodex.errors import MasterKeyError, StoreNotReady
from kodex.store.crypto import MasterKey
from kodex.store.schema import keyring, libraries

__all__ = [
    "Connection",  # the types a caller names in its signatures, so that it need not import sqlalchemy itself
    "Engine",
    "connect",
    "ensure_master_key",
    "is_postgresql",
    "open_store",
    "reading",
    "sqlite_file",
    "sync_libraries",
    "upgrade",
    "verify_master_key",
]

_MIGRATIONS = Path(__file__).parent / "migrations"


# Connections kept open for reuse, and how many more a burst may open (closed when given back). The web service
# answers from a pool of 40 threads (anyio's default), each holding a connection while it works: with SQLAlchemy's
# default of 5 kept, a server at concurrency 16 opened and closed a connection for most requests (a new SQLite
# connection also starts with a cold page cache), which cost more than the requests. Opened lazily, as needed.
_POOL = {"pool_size": 20, "max_overflow": 20}


def connect(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreNotReady(
            "KODEX_DATABASE_URL is not a database URL; write e.g. sqlite:////path/kodex.sqlite3 "
            "or postgresql+psycopg://user@host:5432/db"
        ) from None
    if parsed.get_backend_name() == "sqlite":
        _create_owner_only(parsed.database)
        engine = create_engine(parsed, connect_args={"timeout": 60}, hide_parameters=True, **_POOL)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.get_backend_name() != "postgresql":
        raise StoreNotReady("kodex stores its data in SQLite or PostgreSQL; KODEX_DATABASE_URL names another database")
    engine = create_engine(parsed, hide_parameters=True, **_POOL)  # errors never carry values
    _ping_when_idle(engine)
    return engine


# A PostgreSQL connection that sat in the pool this long is pinged before use (one round trip); a dead one (the
# server restarted, a firewall dropped it) is replaced unseen. A busy service's connections are never idle that
# long, so its requests pay no ping: pinging at every checkout cost two round trips of an explanation's ten.
IDLE_PING_SECONDS = 10.0


def _ping_when_idle(engine: Engine) -> None:
    @event.listens_for(engine, "checkin")
    def returned(_connection: Any, record: Any) -> None:
        record.info["returned_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def taken(connection: Any, record: Any, _proxy: Any) -> None:
        returned_at = record.info.get("returned_at")
        if returned_at is None or time.monotonic() - returned_at < IDLE_PING_SECONDS:
            return
        try:
            alive = engine.dialect.do_ping(connection)
        except Exception:
            alive = False
        if not alive:  # the pool discards it and checks out another (a new one if need be)
            raise DisconnectionError("the pooled connection did not answer")


@contextmanager
def reading(engine: Engine) -> Iterator[Connection]:
    """A connection for reads only, in autocommit: on PostgreSQL it pays no BEGIN and no ROLLBACK.

    Those are two round trips of the two or three a web request makes. Each statement sees what was committed
    when it started, as it does in a READ COMMITTED transaction anyway; nothing written through it is kept
    apart (write in `engine.begin()`).
    """
    with engine.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT")
        yield connection


def sqlite_file(url: str) -> Path | None:
    """The SQLite database file a URL names (None for PostgreSQL, an in-memory database or no URL)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def _create_owner_only(database: str | None) -> None:
    """Create a missing SQLite file empty and 0600 before SQLite does (it would use 0644 less the umask).

    SQLite gives the -wal and -shm files it creates the mode of the database file (os_unix.c, findCreateFileMode),
    so they are owner-only too, whenever a later run creates them. A file already there is left as it is
    (`kodex init` tightens it).
    """
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    if path.exists() or not path.parent.is_dir():
        return
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return  # another process created it meanwhile
    os.fchmod(descriptor, 0o600)
    os.close(descriptor)


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=60000")
    cursor.execute("PRAGMA secure_delete=ON")  # deleted personal data and keys are overwritten, not left in free pages
    cursor.close()


def is_postgresql(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    return config


def upgrade(engine: Engine, master: MasterKey | None = None) -> None:
    """Create or migrate the schema to the current version.

    A migration that encrypts values kept in clear before needs the store's master key (checked against the
    store's check value before it is used); without one it stops and says so.
    """
    config = _config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        config.attributes["master"] = master
        command.upgrade(config, "head")


def open_store(url: str) -> Engine:
    """An engine on a store at the current schema, or StoreNotReady saying what to do."""
    parsed = make_url(url) if "://" in url else None
    file = parsed.database if parsed is not None and parsed.get_backend_name() == "sqlite" else None
    if file and file != ":memory:" and not Path(file).exists():  # do not leave an empty database file behind
        raise StoreNotReady(f"there is no database at {file}; run `kodex init`")
    engine = connect(url)
    head = ScriptDirectory.from_config(_config()).get_current_head()
    try:
        with engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
    except OperationalError:
        raise StoreNotReady(f"cannot open the database at {_safe_url(url)}; check KODEX_DATABASE_URL") from None
    if current is None:
        raise StoreNotReady(f"the database at {_safe_url(url)} is not set up; run `kodex init`")
    if current != head:
        raise StoreNotReady(f"the database at {_safe_url(url)} is at schema {current}, not {head}; run `kodex init`")
    return engine


def _safe_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def ensure_master_key(engine: Engine, master: MasterKey) -> bool:
    """Record the master key's check value on first use; True if this call recorded it.

    Raises MasterKeyError when the store was set up with another key.
    """
    with engine.begin() as connection:
        check = connection.execute(select(keyring.c.check_value).where(keyring.c.name == "master")).scalar()
        if check is None:
            connection.execute(
                insert(keyring).values(name="master", check_value=master.check_value(), created_at=datetime.now(UTC))
            )
            return True
    if not master.matches(check):
        raise MasterKeyError(
            f"the master key in {master.source} is not the key this store was set up with; "
            "set KODEX_MASTER_KEY_FILE to this store's key file"
        )
    return False


def verify_master_key(engine: Engine, master: MasterKey) -> None:
    """Stop before touching anything when the key is not this store's (or the store has none yet)."""
    with engine.connect() as connection:
        check = connection.execute(select(keyring.c.check_value).where(keyring.c.name == "master")).scalar()
    if check is None:
        raise StoreNotReady("the store has no master key recorded; run `kodex init`")
    if not master.matches(check):
        raise MasterKeyError(
            f"the master key in {master.source} is not the key this store was set up with; "
            "set KODEX_MASTER_KEY_FILE to this store's key file"
        )


def sync_libraries(engine: Engine, policy_libraries: list[tuple[str, str, str]]) -> None:
    """Make the libraries table hold every library of the policy (id, name, time zone)."""
    with engine.begin() as connection:
        known = {row.id: row for row in connection.execute(select(libraries))}
        for library_id, name, zone in policy_libraries:
            row = known.get(library_id)
            if row is None:
                connection.execute(insert(libraries).values(id=library_id, name=name, time_zone=zone))
            elif (row.name, row.time_zone) != (name, zone):
                connection.execute(
                    libraries.update().where(libraries.c.id == library_id).values(name=name, time_zone=zone)
                )
