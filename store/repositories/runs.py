"""Runs: a library's run rows, a dry run's plan, and the per-library run lock (a lease row or an advisory lock).

The nightly job (kodex.retention.run, .locking) decides when and in which transaction; these functions are the
statements it issues, each as it always has: no function opens a transaction of its own unless it says so.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Connection, Engine, Row, delete, exists, func, select, text, update
from sqlalchemy.exc import IntegrityError

from kodex.store.schema import camera_recordings, plan_items, readers, run_leases, runs

__all__ = [
    "add_lease",
    "advisory_unlock",
    "close_run",
    "current_schema",
    "last_finished_revision",
    "lease",
    "lease_holder",
    "mark_interrupted",
    "night_done",
    "open_run",
    "plan_rows",
    "release_lease",
    "store_plan",
    "try_advisory_lock",
]


# -- run rows ----------------------------------------------------------------------------------------------------------


def mark_interrupted(connection: Connection, library: str) -> None:
    """The library's runs still marked running (not dry) were interrupted: only the lock's holder may say so."""
    connection.execute(
        update(runs)
        .where(runs.c.library == library, runs.c.status == "running", runs.c.dry_run.is_(False))
        .values(status="interrupted")
    )


def open_run(
    connection: Connection,
    run_id: str,
    library: str,
    as_of: str,
    as_of_day: date,
    *,
    dry_run: bool,
    full: bool,
    policy_revision: str,
) -> None:
    """A run's row, `running` from now."""
    connection.execute(
        runs.insert().values(
            id=run_id,
            library=library,
            as_of=as_of,
            as_of_day=as_of_day,
            dry_run=dry_run,
            full=full,
            policy_revision=policy_revision,
            status="running",
            started_at=datetime.now(UTC),
        )
    )


def close_run(connection: Connection, run_id: str, status: str, summary: dict[str, Any]) -> None:
    """The run ends now with `status` and its summary."""
    connection.execute(
        update(runs).where(runs.c.id == run_id).values(status=status, finished_at=datetime.now(UTC), summary=summary)
    )


def last_finished_revision(engine: Engine, library: str) -> str | None:
    """The policy revision the library's last finished (not dry) run decided under; None before any."""
    with engine.connect() as connection:
        revision: str | None = connection.execute(
            select(runs.c.policy_revision)
            .where(runs.c.library == library, runs.c.status == "finished", runs.c.dry_run.is_(False))
            .order_by(runs.c.started_at.desc())
            .limit(1)
        ).scalar()
    return revision


# -- a dry run's plan --------------------------------------------------------------------------------------------------


def store_plan(connection: Connection, rows: list[dict[str, Any]]) -> None:
    """A dry run's plan items, in one statement (an executemany)."""
    connection.execute(plan_items.insert(), rows)


def plan_rows(engine: Engine, run_id: str, limit: int | None = None) -> Iterator[Row[Any]]:
    """A dry run's plan items in order, each (decision, subject_id): the record id looked up by pseudonym."""
    reader = select(readers.c.id).where(readers.c.pseudonym == plan_items.c.subject).scalar_subquery()
    recording = (
        select(camera_recordings.c.id).where(camera_recordings.c.pseudonym == plan_items.c.subject).scalar_subquery()
    )
    query = (
        select(plan_items.c.decision, func.coalesce(reader, recording).label("subject_id"))
        .where(plan_items.c.run_id == run_id)
        .order_by(plan_items.c.pid)
        .limit(limit)
    )
    with engine.connect() as connection:
        yield from connection.execute(query)


# -- the run lock: PostgreSQL's advisory lock --------------------------------------------------------------------------


def current_schema(connection: Connection) -> str | None:
    schema: str | None = connection.execute(text("SELECT current_schema()")).scalar()
    return schema


def try_advisory_lock(connection: Connection, key: int) -> bool:
    return bool(connection.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())


def advisory_unlock(connection: Connection, key: int) -> None:
    connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})


# -- the run lock: SQLite's lease row ----------------------------------------------------------------------------------


def lease(connection: Connection, library: str) -> Row[Any] | None:
    """The library's lease row, if one is held."""
    return connection.execute(select(run_leases).where(run_leases.c.library == library)).first()


def lease_holder(engine: Engine, library: str) -> str | None:
    """Who holds the library's lease ("host:pid"), if anyone."""
    with engine.connect() as connection:
        row = connection.execute(select(run_leases.c.holder).where(run_leases.c.library == library)).first()
    return None if row is None else str(row.holder)


def release_lease(connection: Connection, library: str, run_id: str) -> None:
    connection.execute(delete(run_leases).where(run_leases.c.library == library, run_leases.c.run_id == run_id))


def add_lease(connection: Connection, library: str, run_id: str, holder: str, acquired_at: datetime) -> bool:
    """Take the library's lease for `run_id`; False when another process took it first."""
    try:
        connection.execute(
            run_leases.insert().values(library=library, run_id=run_id, holder=holder, acquired_at=acquired_at)
        )
    except IntegrityError:
        return False
    return True


def night_done(connection: Connection, library: str, day: date) -> bool:
    """A finished, non-dry run of `library` exists for the local `day` (the scheduler's night)."""
    query = select(
        exists().where(
            runs.c.library == library,
            runs.c.as_of_day == day,
            runs.c.dry_run.is_(False),
            runs.c.status == "finished",
        )
    )
    return bool(connection.execute(query).scalar())
