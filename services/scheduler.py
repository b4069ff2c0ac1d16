"""The nightly schedule `kodex serve` keeps: each library's run at its local time, once a night.

Each library's job runs at the time the configuration sets for it (the
[schedule] section of the config file, or KODEX_SCHEDULE_TIME; default 02:00)
in the library's own time zone. A *night* is that scheduled moment; a night is
done when a finished, non-dry run of the library exists for its local day
(runs.as_of_day). The run decides as of the scheduled moment, whenever it
actually starts.

- APScheduler 3.x fires one cron job per library; misfire grace time,
  coalescing and max_instances are set explicitly on each job, so a job that
  fires late (the machine slept, the pool was busy) still runs once, and jobs
  that piled up run once.
- On start, the most recent night of each library is caught up once if it has
  no finished run (the service was down at the scheduled time). Only the most
  recent night: a run reviews everything due up to its moment, so earlier
  missed nights have nothing left that it does not do.
- However many service processes run, a night runs once: the job takes the
  library's *nightly* lock (retention.locking, on its own key) with a generous
  wait, checks under it whether the night is done, and only then runs (which
  takes the library's run lock, so it also waits for a manual `kodex run`).
  A second process waits for the first, then finds the night done and skips.

Logs say which library, which night and the counts of what was done; never a
record's data, a token, or a database error's text (it can carry values).
"""

from __future__ import annotations

import hashlib
import logging
import traceback
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

# APScheduler 3.x ships no type hints (4.x does, but is not stable yet)
from apscheduler.schedulers.background import BackgroundScheduler  # type: ignore[import-untyped]
from apscheduler.triggers.cron import CronTrigger  # type: ignore[import-untyped]
from apscheduler.triggers.date import DateTrigger  # type: ignore[import-untyped]

from kodex.errors import RunInProgress
from kodex.retention.locking import library_lock
from kodex.retention.run import SCHEDULER, LibraryRun, run_library
from kodex.rules.ruleset import Ruleset
from kodex.services.setup import Workspace
from kodex.store.database import Engine
from kodex.store.repositories import runs

__all__ = [
    "Clock",
    "NightOutcome",
    "build_scheduler",
    "catch_up",
    "catch_up_job_id",
    "night_done",
    "nightly_job",
    "nightly_job_id",
    "run_latest_night",
    "scheduled_night",
]

log = logging.getLogger("kodex.scheduler")

Clock = Callable[[], datetime]
NightOutcome = Literal["ran", "done", "busy", "failed"]
"""ran: this call ran the night; done: it had run already; busy: the lock stayed taken; failed: the run failed."""

UNTIL_NEXT_NIGHT = 23 * 3600  # a catch-up still worth starting (the scheduler's own jobs use the configured grace)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def nightly_job_id(library: str) -> str:
    return f"nightly:{library}"


def catch_up_job_id(library: str) -> str:
    return f"catch-up:{library}"


def _wall_clock(day: date, at: time, zone: ZoneInfo) -> datetime:
    """`day` at `at` in `zone`; a time skipped by a clock change means the same instant as the hour before it.

    The same reading as APScheduler's cron trigger (apscheduler.util.localize): e.g. 02:30 on the spring-forward
    night in Europe/Prague is 03:30 CEST; on the fall-back night it is the first 02:30.
    """
    wall = datetime.combine(day, at.replace(tzinfo=None, fold=0)).replace(tzinfo=zone)
    return datetime.fromtimestamp(wall.timestamp(), zone)


def scheduled_night(now: datetime, zone: ZoneInfo, at: time) -> datetime:
    """The latest moment at or before `now` when the library's clock (in `zone`) reads `at`.

    With `at` 02:00: today's 02:00 local time if it has passed, else yesterday's. `now` must be time-zone aware.
    """
    if now.tzinfo is None:
        raise ValueError("now must carry a time zone")
    instant = now.astimezone(UTC)
    today = now.astimezone(zone).date()
    for back in range(3):  # at most two days back, whatever a clock change does
        candidate = _wall_clock(today - timedelta(days=back), at, zone)
        if candidate.astimezone(UTC) <= instant:
            return candidate
    raise AssertionError("unreachable: yesterday's scheduled moment is always before now")  # pragma: no cover


def night_done(engine: Engine, library: str, day: date) -> bool:
    """A finished, non-dry run of `library` exists for the local `day`."""
    with engine.connect() as connection:
        return runs.night_done(connection, library, day)


def nightly_job(
    workspace: Workspace,
    ruleset: Ruleset,
    library: str,
    scheduled_at: datetime,
    *,
    wait: float | None = None,
) -> NightOutcome:
    """Run `library`'s night `scheduled_at` (as of that moment) unless it is done; never raises.

    `wait` is how long to wait for another process's run of this library (default: the misfire grace time).
    """
    zone = ruleset.library(library).zone
    as_of = scheduled_at.astimezone(zone)
    day = as_of.date()
    settings = workspace.settings
    patience = settings.schedule.misfire_grace_hours * 3600.0 if wait is None else wait
    night = f"{as_of:%Y-%m-%d %H:%M %Z}"
    try:
        if night_done(workspace.engine, library, day):
            log.info("library %s: night %s already done; skipped", library, night)
            return "done"
        with library_lock(workspace.engine, _nightly_lock(library), str(uuid.uuid4()), wait=patience):
            if night_done(workspace.engine, library, day):  # another process ran it while this one waited
                log.info("library %s: night %s done by another process meanwhile; skipped", library, night)
                return "done"
            log.info("library %s: night %s: run started", library, night)
            result = run_library(
                workspace.engine, ruleset, workspace.master, library, as_of,
                batch_size=settings.batch_size, wait=patience, started_by=SCHEDULER,
                recordings_folder=settings.recordings.folder(library),
            )  # fmt: skip
    except RunInProgress:
        log.warning("library %s: night %s: another run held the lock for %.0f s; not run now", library, night, patience)
        return "busy"
    except Exception as error:  # the service keeps going; the next start or night catches up
        log.error(
            "library %s: night %s: the run failed (%s); it is retried on the next start or night\n%s",
            library, night, type(error).__name__, "".join(traceback.format_tb(error.__traceback__)).rstrip(),
        )  # fmt: skip
        return "failed"
    log.info("library %s: night %s: run finished: %s", library, night, _counts(result))
    return "ran"


def _nightly_lock(library: str) -> str:
    """The nightly lock's key: apart from the run lock's, and within run_leases.library's 64 characters."""
    key = f"{library}:nightly"
    return key if len(key) <= 64 else "nightly:" + hashlib.sha256(library.encode()).hexdigest()[:48]


def _counts(result: LibraryRun) -> str:
    done = ", ".join(f"{action} {outcome} {n}" for (action, outcome), n in sorted(result.counts.items()))
    return f"{result.reviewed} reviewed; {done or 'nothing to do'}"


def run_latest_night(
    workspace: Workspace, ruleset: Ruleset, library: str, now: Clock = _utc_now, *, wait: float | None = None
) -> NightOutcome:
    """Run the library's most recent scheduled night as of `now()`, unless it is done (the cron and catch-up job)."""
    at = workspace.settings.schedule.time_for(library)
    night = scheduled_night(now(), ruleset.library(library).zone, at)
    return nightly_job(workspace, ruleset, library, night, wait=wait)


def catch_up(
    workspace: Workspace, ruleset: Ruleset, now: Clock = _utc_now, *, wait: float | None = None
) -> dict[str, NightOutcome]:
    """For each library, run its most recent night now if no finished run exists for it (one after another)."""
    return {library: run_latest_night(workspace, ruleset, library, now, wait=wait) for library in ruleset.libraries}


def build_scheduler(
    workspace: Workspace,
    ruleset: Ruleset,
    now: Clock = _utc_now,
    *,
    catch_up_on_start: bool = True,
) -> BackgroundScheduler:
    """A BackgroundScheduler (not started) with one cron job per library at its local time, in its time zone.

    With `catch_up_on_start`, each library also gets a one-off job, run as soon as the scheduler starts, that
    catches its most recent night up if it has not run. `now` is the clock the jobs read the night from.
    """
    schedule = workspace.settings.schedule
    grace = schedule.misfire_grace_hours * 3600
    scheduler = BackgroundScheduler(
        timezone=UTC, job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": grace}
    )
    for library_id, compiled in ruleset.libraries.items():
        at = schedule.time_for(library_id)
        scheduler.add_job(
            run_latest_night,
            CronTrigger(hour=at.hour, minute=at.minute, second=at.second, timezone=compiled.zone),
            args=[workspace, ruleset, library_id, now],
            id=nightly_job_id(library_id),
            name=f"nightly run of {library_id} at {at:%H:%M} {compiled.zone.key}",
            misfire_grace_time=grace,
            coalesce=True,
            max_instances=1,
            replace_existing=True,
        )
        if catch_up_on_start:
            scheduler.add_job(
                run_latest_night,
                DateTrigger(timezone=UTC),  # as soon as the scheduler starts
                args=[workspace, ruleset, library_id, now],
                id=catch_up_job_id(library_id),
                name=f"catch-up of {library_id}'s last night",
                misfire_grace_time=UNTIL_NEXT_NIGHT,
                coalesce=True,
                max_instances=1,
                replace_existing=True,
            )
    return scheduler
