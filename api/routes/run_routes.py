"""Runs: trigger one (it runs in the background), read its status and summary, read a dry run's plan."""

from __future__ import annotations

import logging
import uuid
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Depends, Path, Query, Request

from kodex.api.auth import Principal, for_library
from kodex.api.routes.common import PROBLEMS, ruleset, workspace
from kodex.api.schemas import RunIn, RunOut
from kodex.errors import Denied, RunInProgress, SubjectNotFound
from kodex.retention.locking import lock_held
from kodex.retention.run import Starter, plan_decisions, refuse_look_ahead, run_library, started_by_user
from kodex.rules.ruleset import Ruleset
from kodex.services.setup import Workspace
from kodex.store.repositories.run_status import RunStatus, recent_runs, run_in_progress, run_status

router = APIRouter(tags=["runs"], responses=PROBLEMS)
log = logging.getLogger("kodex.runs")
RunId = Annotated[str, Path(min_length=1, max_length=36)]


@router.post("/libraries/{library}/runs", status_code=202, response_model=RunOut)
def start(
    library: str,
    body: RunIn,
    request: Request,
    background: BackgroundTasks,
    principal: Annotated[Principal, Depends(for_library("runs.start"))],
) -> RunOut:
    """Start the library's job now (as `kodex run`), in the background; follow it with GET …/runs/{id}.

    A dpo may start dry runs only (the plan: what would happen and why, changing nothing). A run that applies
    decisions may not have an `as_of` past the library's tomorrow (422): only a dry run may look ahead.
    """
    if principal.user.role == "dpo" and not body.dry_run:
        raise Denied("a dpo may start dry runs only; the nightly job is the scheduler's")
    work, rules = workspace(request), ruleset(request)
    zone = rules.library(library).zone
    as_of = body.as_of if body.as_of is not None else datetime.now(zone)
    refuse_look_ahead(rules, library, as_of, dry_run=body.dry_run)
    if not body.dry_run:
        running = run_in_progress(work.engine, library)
        if running is not None and lock_held(work.engine, library):  # a row left running by a dead run: no lock
            raise RunInProgress(f"library {library!r}: run {running} is in progress; try again when it has finished")
    run_id = str(uuid.uuid4())
    starter = started_by_user(principal.user.id, principal.user.role)
    background.add_task(_run, work, rules, library, as_of, body.dry_run, body.full, run_id, starter)
    return RunOut(
        id=run_id, library=library, as_of=as_of.isoformat(), dry_run=body.dry_run, full=body.full,
        policy_revision=rules.revision, status="started", started_at=None, finished_at=None, summary=None,
    )  # fmt: skip


@router.get("/libraries/{library}/runs", response_model=list[RunOut])
def recent(
    library: str,
    request: Request,
    _: Annotated[Principal, Depends(for_library("runs.read"))],
    limit: Annotated[int, Query(ge=1, le=500)] = 20,
) -> list[RunOut]:
    """The library's runs, newest first."""
    return [_run_out(run) for run in recent_runs(workspace(request).engine, library, limit)]


@router.get("/libraries/{library}/runs/{run_id}", response_model=RunOut)
def status(
    library: str, run_id: RunId, request: Request, _: Annotated[Principal, Depends(for_library("runs.read"))]
) -> RunOut:
    """A run's status and, once finished, its summary (decisions per action and outcome)."""
    return _run_out(_find(workspace(request), library, run_id))


@router.get("/libraries/{library}/runs/{run_id}/plan", response_model=list[dict[str, Any]])
def plan(
    library: str,
    run_id: RunId,
    request: Request,
    _: Annotated[Principal, Depends(for_library("runs.plan"))],
    limit: Annotated[int, Query(ge=1, le=10_000)] = 500,
) -> list[dict[str, Any]]:
    """A dry run's plan: each decision it would take, with the subject's record id, rule, article and reasons."""
    work = workspace(request)
    if not _find(work, library, run_id).dry_run:
        raise SubjectNotFound(f"run {run_id} is not a dry run; its decisions are in GET …/decisions?run={run_id}")
    return list(plan_decisions(work.engine, run_id, limit))


def _find(work: Workspace, library: str, run_id: str) -> RunStatus:
    found = run_status(work.engine, library, run_id)
    if found is None:
        raise SubjectNotFound(f"no run {run_id} in library {library} (a run just started appears within a moment)")
    return found


def _run(
    work: Workspace,
    rules: Ruleset,
    library: str,
    as_of: date | datetime,
    dry_run: bool,
    full: bool,
    run_id: str,
    started_by: Starter,
) -> None:
    try:
        run_library(
            work.engine, rules, work.master, library, as_of, dry_run=dry_run, full=full,
            batch_size=work.settings.batch_size, run_id=run_id, started_by=started_by,
            recordings_folder=work.settings.recordings.folder(library),
        )  # fmt: skip
    except RunInProgress:
        log.warning("run %s of %s not started: another run is in progress", run_id, library)
    except Exception as error:  # logged by type only: its message may hold a value; run_library marked it failed
        log.error("run %s of %s failed: %s", run_id, library, type(error).__name__)


def _run_out(run: RunStatus) -> RunOut:
    return RunOut(
        id=run.id, library=run.library, as_of=run.as_of, dry_run=run.dry_run, full=run.full,
        policy_revision=run.policy_revision, status=run.status, started_at=run.started_at,
        finished_at=run.finished_at, summary=run.summary,
    )  # fmt: skip
