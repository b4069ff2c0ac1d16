"""What every route module shares: the documented error answers, the caller's workspace and policy."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from fastapi import Request

from kodex.api.schemas import Problem
from kodex.clock import library_today
from kodex.rules.ruleset import Ruleset
from kodex.services.scheduler import nightly_job_id
from kodex.services.setup import Workspace

__all__ = ["PROBLEMS", "next_run", "next_run_of", "ruleset", "today", "workspace"]

PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "no token, or an unknown or revoked one"},
    403: {"model": Problem, "description": "the token's role may not do this, or not in this library"},
    404: {"model": Problem, "description": "not found in the caller's library"},
    409: {"model": Problem, "description": "conflicts with the state (a run in progress, no agreement recorded)"},
    413: {"model": Problem, "description": "the body is over the size limit"},
    422: {"model": Problem, "description": "the body or a parameter is invalid; `errors` says where"},
}


def workspace(request: Request) -> Workspace:
    work: Workspace = request.app.state.workspace
    return work


def ruleset(request: Request) -> Ruleset:
    rules: Ruleset = request.app.state.ruleset
    return rules


def next_run_of(request: Request, library: str) -> datetime | None:
    """When the scheduler in this process runs the library next (None: no scheduler here)."""
    return next_run(request.app.state.scheduler, library)


def next_run(scheduler: Any, library: str) -> datetime | None:
    if scheduler is None or not scheduler.running:
        return None
    job = scheduler.get_job(nightly_job_id(library))
    moment = getattr(job, "next_run_time", None)
    return moment if isinstance(moment, datetime) else None


def today(request: Request, library: str) -> date:
    """Today in the library's time zone."""
    return library_today(ruleset(request), library)
