"""Reading runs back: a run's status and summary, a library's recent runs, the latest, the one in progress.

What the HTTP API and `/health` show of a run. Starting, finishing and planning runs is the nightly job's
(retention.run); a dry run's plan items are read there too (`plan_decisions`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError

from kodex.store.schema import runs

__all__ = ["RunStatus", "latest_runs", "recent_runs", "run_in_progress", "run_status"]


@dataclass(frozen=True)
class RunStatus:
    id: str
    library: str
    as_of: str  # the moment the run decided for, as stored (ISO 8601)
    dry_run: bool
    full: bool
    policy_revision: str
    status: str  # running, finished, failed, interrupted
    started_at: datetime | None
    finished_at: datetime | None
    summary: dict[str, Any] | None  # decisions per action and outcome, once finished


def run_status(engine: Engine, library: str, run_id: str) -> RunStatus | None:
    """The library's run `run_id`; None when the library has no such run."""
    with engine.connect() as connection:
        row = connection.execute(select(runs).where(runs.c.library == library, runs.c.id == run_id)).first()
    return None if row is None else _status(row)


def recent_runs(engine: Engine, library: str, limit: int) -> list[RunStatus]:
    """The library's latest `limit` runs, newest first."""
    query = select(runs).where(runs.c.library == library).order_by(runs.c.started_at.desc()).limit(limit)
    with engine.connect() as connection:
        return [_status(row) for row in connection.execute(query)]


def run_in_progress(engine: Engine, library: str) -> str | None:
    """The id of a run (not a dry run) the store marks running; a run killed without finishing leaves one too."""
    query = select(runs.c.id).where(runs.c.library == library, runs.c.status == "running", runs.c.dry_run.is_(False))
    with engine.connect() as connection:
        found: str | None = connection.execute(query).scalar()
    return found


def latest_runs(engine: Engine, libraries: list[str]) -> dict[str, RunStatus] | None:
    """Each library's latest run that was not a dry run (a library with none is left out).

    None when the database does not answer (or is not kodex's): what `/health` reports as unreachable.
    """
    latest = select(runs).where(runs.c.dry_run.is_(False)).order_by(runs.c.started_at.desc()).limit(1)
    found: dict[str, RunStatus] = {}
    try:
        with engine.connect() as connection:
            for library in libraries:  # one indexed query per library: a handful of libraries, many runs
                row = connection.execute(latest.where(runs.c.library == library)).first()
                if row is not None:
                    found[library] = _status(row)
    except SQLAlchemyError:
        return None
    return found


def _status(row: Any) -> RunStatus:
    return RunStatus(
        id=row.id, library=row.library, as_of=row.as_of, dry_run=row.dry_run, full=row.full,
        policy_revision=row.policy_revision, status=row.status, started_at=_aware(row.started_at),
        finished_at=_aware(row.finished_at), summary=row.summary,
    )  # fmt: skip


def _aware(moment: datetime | None) -> datetime | None:
    """SQLite gives stored UTC moments back without their zone."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)
