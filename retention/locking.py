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

from kodex.errors import RunInProgress
from kodex.store import Connection, Engine
from kodex.store.database import is_postgresql
from kodex.store.repositories.runs import (
    add_lease,
    advisory_unlock,
    current_schema,
    lease,
    lease_holder,
    release_lease,
    try_advisory_lock,
)

__all__ = ["library_lock", "lock_held"]


HOLDER = f"{socket.gethostname()}:{os.getpid()}"


@contextmanager
def library_lock(engine: Engine, library: str, run_id: str, *, wait: float = 0.0) -> Iterator[None]:
    """Hold the library's run lock for the block; wait up to `wait` seconds for it, then raise RunInProgress."""
    deadline = time.monotonic() + wait
    if is_postgresql(engine):
        with engine.connect() as connection:
            key = _advisory_key(connection, library)
            while not try_advisory_lock(connection, key):
                connection.rollback()
                if time.monotonic() >= deadline:
                    raise RunInProgress(_busy(library))
                time.sleep(0.5)
            connection.commit()
            try:
                yield
            finally:
                advisory_unlock(connection, key)
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
            release_lease(connection, library, run_id)


def lock_held(engine: Engine, library: str) -> bool:
    """Whether a live run holds the library's lock now (a run row left `running` by a killed process holds none)."""
    if is_postgresql(engine):
        with engine.connect() as connection:
            key = _advisory_key(connection, library)
            taken = try_advisory_lock(connection, key)
            if taken:
                advisory_unlock(connection, key)
            connection.commit()
            return not taken
    holder = lease_holder(engine, library)
    return holder is not None and _alive(holder)


def _advisory_key(connection: Connection, library: str) -> int:
    # advisory locks are per database: the schema keeps installations in one database apart
    schema = current_schema(connection)
    return int.from_bytes(hashlib.sha256(f"kodex-run:{schema}:{library}".encode()).digest()[:8], "big", signed=True)


def _busy(library: str) -> str:
    return (
        f"library {library!r}: another run is in progress; it was left alone. "
        "Try again when it has finished, or pass --wait SECONDS to wait for it."
    )


def _take_lease(engine: Engine, library: str, run_id: str) -> bool:
    now = datetime.now(UTC)
    with engine.begin() as connection:
        row = lease(connection, library)
        if row is not None:
            if _alive(row.holder):
                return False
            release_lease(connection, library, row.run_id)
        return add_lease(connection, library, run_id, HOLDER, now)


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
