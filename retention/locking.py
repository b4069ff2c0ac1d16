"""One run per library at a time, however many processes or machines try.

PostgreSQL: a session-level advisory lock, held on its own connection for the
whole run; the server releases it when the connection ends, so a killed run
never leaves it behind. SQLite (one machine): a lease row naming the host and
process; a lease whose process is gone is taken over.
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, delete, select, text
from sqlalchemy.exc import IntegrityError

from kodex.errors import RunInProgress
from kodex.store.database import is_postgresql
from kodex.store.schema import run_leases

__all__ = ["library_lock", "lock_held"]


HOLDER = f"{socket.gethostname()}:{os.getpid()}"


@contextmanager
def library_lock(engine: Engine, library: str, run_id: str, *, wait: float = 0.0) -> Iterator[None]:
    """Hold the library's run lock for the block; wait up to `wait` seconds for it, then raise RunInProgress."""
    deadline = time.monotonic() + wait
    if is_postgresql(engine):
        with engine.connect() as connection:
            key = _advisory_key(connection, library)
            while not connection.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar():
                connection.rollback()
                if time.monotonic() >= deadline:
                    raise RunInProgress(_busy(library))
                time.sleep(0.5)
            connection.commit()
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                connection.commit()
        return
    while not _take_lease(engine, library, run_id):
        if time.monotonic() >= deadline:
            raise RunInProgress(_busy(library))
        time.sleep(0.5)
    try:
        yield
    finally:
        with engine.begin() as connection:
            connection.execute(delete(run_leases).where(run_leases.c.library == library, run_leases.c.run_id == run_id))


def lock_held(engine: Engine, library: str) -> bool:
    """Whether a live run holds the library's lock now (a run row left `running` by a killed process holds none)."""
    if is_postgresql(engine):
        with engine.connect() as connection:
            key = _advisory_key(connection, library)
            taken = connection.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
            if taken:
                connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            connection.commit()
            return not taken
    with engine.connect() as connection:
        row = connection.execute(select(run_leases.c.holder).where(run_leases.c.library == library)).first()
    return row is not None and _alive(row.holder)


def _advisory_key(connection: Connection, library: str) -> int:
    # advisory locks are per database: the schema keeps installations in one database apart
    schema = connection.execute(text("SELECT current_schema()")).scalar()
    return int.from_bytes(hashlib.sha256(f"kodex-run:{schema}:{library}".encode()).digest()[:8], "big", signed=True)


def _busy(library: str) -> str:
    return (
        f"library {library!r}: another run is in progress; it was left alone. "
        "Try again when it has finished, or pass --wait SECONDS to wait for it."
    )


def _take_lease(engine: Engine, library: str, run_id: str) -> bool:
    now = datetime.now(UTC)
    with engine.begin() as connection:
        row = connection.execute(select(run_leases).where(run_leases.c.library == library)).first()
        if row is not None:
            if _alive(row.holder):
                return False
            connection.execute(
                delete(run_leases).where(run_leases.c.library == library, run_leases.c.run_id == row.run_id)
            )
        try:
            connection.execute(
                run_leases.insert().values(library=library, run_id=run_id, holder=HOLDER, acquired_at=now)
            )
        except IntegrityError:
            return False
    return True


def _alive(holder: str) -> bool:
    host, _, pid = holder.rpartition(":")
    if host != socket.gethostname():
        return True  # another machine's lease: assume it lives (SQLite is not shared across machines anyway)
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True
    return True
