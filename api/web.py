"""The kodex web service (`kodex serve`): for now, a health endpoint for monitoring.

GET /health says whether the database answers, which policy revision is
active, and for each library when its next nightly run is due (null when the
scheduler is not running, e.g. `kodex serve --no-scheduler`) and how its last
run ended. 200 when the database answers, 503 when it does not.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import FastAPI, Response
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from retention.scheduler import nightly_job_id
from retention.setup import Workspace
from rules.ruleset import Ruleset
from store.schema import runs

__all__ = ["Health", "LastRun", "LibraryHealth", "create_app"]


class _Model(BaseModel):
    """Every body kodex takes or gives: unknown keys are refused, never ignored."""

    model_config = ConfigDict(extra="forbid")


class LastRun(_Model):
    as_of: str  # the moment the run decided for, as stored (ISO 8601)
    status: str  # running, finished or interrupted
    finished_at: datetime | None


class LibraryHealth(_Model):
    next_run: datetime | None  # in the library's time zone; null when no scheduler runs in this process
    last_run: LastRun | None  # the latest run that was not a dry run; null when none (or the database is down)


class Health(_Model):
    status: Literal["ok", "unavailable"]
    database: Literal["ok", "unreachable"]
    policy_revision: str
    libraries: dict[str, LibraryHealth]


def create_app(workspace: Workspace, ruleset: Ruleset, scheduler: Any = None) -> FastAPI:
    """The web app over an opened workspace; `scheduler` (APScheduler, optional) tells the next runs."""
    app = FastAPI(title="kodex", summary="Library regulations and GDPR retention as executable, cited rules.")

    @app.get("/health", response_model=Health, responses={503: {"model": Health, "description": "database down"}})
    def health(response: Response) -> Health:
        last = _last_runs(workspace, list(ruleset.libraries))
        reachable = last is not None
        if not reachable:
            response.status_code = 503
        libraries = {
            library: LibraryHealth(next_run=_next_run(scheduler, library), last_run=(last or {}).get(library))
            for library in ruleset.libraries
        }
        return Health(
            status="ok" if reachable else "unavailable",
            database="ok" if reachable else "unreachable",
            policy_revision=ruleset.revision,
            libraries=libraries,
        )

    return app


def _last_runs(workspace: Workspace, libraries: list[str]) -> dict[str, LastRun] | None:
    """Each library's latest non-dry run; None when the database does not answer (or is not kodex's)."""
    latest = (
        select(runs.c.as_of, runs.c.status, runs.c.finished_at)
        .where(runs.c.dry_run.is_(False))
        .order_by(runs.c.started_at.desc())
        .limit(1)
    )
    found: dict[str, LastRun] = {}
    try:
        with workspace.engine.connect() as connection:
            for library in libraries:  # one indexed query per library: a handful of libraries, many runs
                row = connection.execute(latest.where(runs.c.library == library)).first()
                if row is not None:
                    found[library] = LastRun(as_of=row.as_of, status=row.status, finished_at=_aware(row.finished_at))
    except SQLAlchemyError:
        return None
    return found


def _aware(moment: datetime | None) -> datetime | None:
    """SQLite gives stored UTC moments back without their zone."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def _next_run(scheduler: Any, library: str) -> datetime | None:
    if scheduler is None or not scheduler.running:
        return None
    job = scheduler.get_job(nightly_job_id(library))
    moment = getattr(job, "next_run_time", None)
    return moment if isinstance(moment, datetime) else None
