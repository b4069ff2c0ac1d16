"""The nightly schedule: which night is due, one run per library per night, and catching a missed night up."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MISSED  # type: ignore[import-untyped]
from sqlalchemy import select

from kodex.config import Schedule
from kodex.retention.locking import library_lock
from kodex.retention.run import run_library
from kodex.rules.ruleset import Ruleset
from kodex.services.importing import import_records
from kodex.services.scheduler import (
    Clock,
    build_scheduler,
    catch_up,
    catch_up_job_id,
    nightly_job,
    nightly_job_id,
    run_latest_night,
    scheduled_night,
)
from kodex.services.setup import Workspace, open_workspace
from kodex.store.schema import runs
from tests.support import ROOT

PRAGUE = ZoneInfo("Europe/Prague")
NEW_YORK = ZoneInfo("America/New_York")
TWO = time(2, 0)
LIBRARIES = {"zdirec", "kntb", "svkpk"}
# The service starts at 10:00 in Prague on 22 Nov 2026: that night's 02:00 has passed, and nothing ran.
MORNING = datetime(2026, 11, 22, 10, 0, tzinfo=PRAGUE)
NIGHT = datetime(2026, 11, 22, 2, 0, tzinfo=PRAGUE)


def fixed(moment: datetime) -> Clock:
    """A clock stopped at `moment`."""
    return lambda: moment


@pytest.fixture
def stocked(workspace: Workspace, ruleset: Ruleset) -> Workspace:
    """The workspace with some readers of every library (and an exception) imported."""
    lines = (ROOT / "samples" / "readers.jsonl").read_text(encoding="utf-8").splitlines()[:30]
    summary = import_records(
        lambda: iter(lines), workspace.engine, ruleset, workspace.master, date(2026, 11, 21),
        recordings=workspace.settings.recordings,
    )  # fmt: skip
    assert summary.added["reader"] == sum('"type": "reader"' in line for line in lines) > 0
    return workspace


@pytest.fixture
def second_process(stocked: Workspace) -> Iterator[Workspace]:
    """Another service process on the same store: its own engine (connections, pool)."""
    other = open_workspace(stocked.settings)
    yield other
    other.engine.dispose()


def run_rows(workspace: Workspace, library: str | None = None) -> list[dict[str, object]]:
    query = select(runs).where(runs.c.dry_run.is_(False)).order_by(runs.c.started_at)
    if library is not None:
        query = query.where(runs.c.library == library)
    with workspace.engine.connect() as connection:
        return [dict(row._mapping) for row in connection.execute(query)]


# -- which night --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "night"),
    [
        (datetime(2026, 11, 22, 10, 0, tzinfo=PRAGUE), datetime(2026, 11, 22, 2, 0, tzinfo=PRAGUE)),
        (datetime(2026, 11, 22, 2, 0, tzinfo=PRAGUE), datetime(2026, 11, 22, 2, 0, tzinfo=PRAGUE)),  # at the moment
        (datetime(2026, 11, 22, 1, 59, 59, tzinfo=PRAGUE), datetime(2026, 11, 21, 2, 0, tzinfo=PRAGUE)),
        (datetime(2026, 11, 22, 0, 0, tzinfo=PRAGUE), datetime(2026, 11, 21, 2, 0, tzinfo=PRAGUE)),  # midnight
        (datetime(2026, 11, 21, 23, 59, tzinfo=PRAGUE), datetime(2026, 11, 21, 2, 0, tzinfo=PRAGUE)),
        # read in the library's zone, whatever zone `now` comes in: 00:30 UTC is 01:30 in Prague, 01:30 UTC is 02:30
        (datetime(2026, 11, 22, 0, 30, tzinfo=UTC), datetime(2026, 11, 21, 2, 0, tzinfo=PRAGUE)),
        (datetime(2026, 11, 22, 1, 30, tzinfo=UTC), datetime(2026, 11, 22, 2, 0, tzinfo=PRAGUE)),
        (datetime(2026, 1, 1, 0, 30, tzinfo=UTC), datetime(2025, 12, 31, 2, 0, tzinfo=PRAGUE)),  # over the year's end
    ],
)
def test_the_night_is_the_latest_scheduled_moment_at_or_before_now(now: datetime, night: datetime) -> None:
    found = scheduled_night(now, PRAGUE, TWO)
    assert found == night
    assert found.tzinfo is PRAGUE
    assert found.date() == night.date()


def test_the_night_is_read_in_the_libraries_own_zone() -> None:
    now = datetime(2026, 11, 22, 6, 30, tzinfo=UTC)  # 07:30 in Prague, 01:30 in New York
    assert scheduled_night(now, PRAGUE, TWO) == datetime(2026, 11, 22, 2, 0, tzinfo=PRAGUE)
    assert scheduled_night(now, NEW_YORK, TWO) == datetime(2026, 11, 21, 2, 0, tzinfo=NEW_YORK)
    assert scheduled_night(datetime(2026, 11, 22, 7, 0, tzinfo=UTC), NEW_YORK, TWO).date() == date(2026, 11, 22)


def test_a_time_just_before_midnight_belongs_to_the_day_before_until_it_comes_round() -> None:
    late = time(23, 30)
    assert scheduled_night(datetime(2026, 11, 22, 0, 10, tzinfo=PRAGUE), PRAGUE, late) == datetime(
        2026, 11, 21, 23, 30, tzinfo=PRAGUE
    )
    assert scheduled_night(datetime(2026, 11, 22, 23, 45, tzinfo=PRAGUE), PRAGUE, late) == datetime(
        2026, 11, 22, 23, 30, tzinfo=PRAGUE
    )


def test_the_night_across_the_clock_changes() -> None:
    # 29 Mar 2026, Prague springs from 02:00 to 03:00: 02:30 does not exist and means 03:30 CEST (01:30 UTC)
    spring = scheduled_night(datetime(2026, 3, 29, 1, 45, tzinfo=UTC), PRAGUE, time(2, 30))
    assert spring.astimezone(UTC) == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    assert spring.date() == date(2026, 3, 29)
    assert scheduled_night(datetime(2026, 3, 29, 1, 15, tzinfo=UTC), PRAGUE, time(2, 30)).date() == date(2026, 3, 28)
    # 25 Oct 2026, Prague falls back from 03:00 to 02:00: 02:30 comes twice; the night is the first one
    autumn = scheduled_night(datetime(2026, 10, 25, 1, 45, tzinfo=UTC), PRAGUE, time(2, 30))
    assert autumn.astimezone(UTC) == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)


def test_now_without_a_time_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="time zone"):
        scheduled_night(datetime(2026, 11, 22, 10, 0), PRAGUE, TWO)


# -- the jobs -----------------------------------------------------------------------------------


def test_each_library_has_a_cron_job_at_its_local_time_with_explicit_misfire_and_coalescing(
    workspace: Workspace, ruleset: Ruleset
) -> None:
    schedule = Schedule(time=time(2, 0), libraries={"kntb": time(3, 30)}, misfire_grace_hours=4)
    work = Workspace(workspace.engine, workspace.master, workspace.settings.model_copy(update={"schedule": schedule}))
    scheduler = build_scheduler(work, ruleset, fixed(MORNING))
    jobs = {job.id: job for job in scheduler.get_jobs()}
    assert set(jobs) == {nightly_job_id(lib) for lib in LIBRARIES} | {catch_up_job_id(lib) for lib in LIBRARIES}
    for library in LIBRARIES:
        job = jobs[nightly_job_id(library)]
        assert job.misfire_grace_time == 4 * 3600
        assert job.coalesce is True
        assert job.max_instances == 1
        assert job.trigger.timezone == ruleset.library(library).zone
        local = time(3, 30) if library == "kntb" else time(2, 0)
        after = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
        assert job.trigger.get_next_fire_time(None, after) == datetime.combine(date(2026, 11, 23), local, PRAGUE)
        assert jobs[catch_up_job_id(library)].coalesce is True
    assert not scheduler.running
    without = build_scheduler(work, ruleset, fixed(MORNING), catch_up_on_start=False)
    assert {job.id for job in without.get_jobs()} == {nightly_job_id(lib) for lib in LIBRARIES}


def start_and_finish_catch_up(*schedulers: object) -> dict[str, list[str]]:
    """Start the schedulers together; wait until every catch-up job has run; what each did, per library."""
    outcomes: dict[str, list[str]] = {library: [] for library in LIBRARIES}
    pending = len(LIBRARIES) * len(schedulers)
    finished = threading.Event()
    guard = threading.Lock()

    def heard(event: object) -> None:
        nonlocal pending
        job_id: str = event.job_id  # type: ignore[attr-defined]
        if not job_id.startswith("catch-up:"):
            return
        with guard:
            outcomes[job_id.removeprefix("catch-up:")].append(
                getattr(event, "retval", None) or f"error: {getattr(event, 'exception', 'missed')!r}"
            )
            pending -= 1
            if pending == 0:
                finished.set()

    for scheduler in schedulers:
        scheduler.add_listener(heard, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MISSED)  # type: ignore[attr-defined]
    for scheduler in schedulers:
        scheduler.start()  # type: ignore[attr-defined]
    try:
        assert finished.wait(120), f"catch-up jobs did not finish: {outcomes}"
    finally:
        for scheduler in schedulers:
            scheduler.shutdown(wait=True)  # type: ignore[attr-defined]
    return outcomes


def test_a_missed_night_is_caught_up_once_on_start_however_many_services_start(
    stocked: Workspace, second_process: Workspace, ruleset: Ruleset, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="kodex.scheduler")
    clock = fixed(MORNING)
    # two service processes start at 10:00; the night's 02:00 passed while neither was up
    outcomes = start_and_finish_catch_up(
        build_scheduler(stocked, ruleset, clock), build_scheduler(second_process, ruleset, clock)
    )
    assert {library: sorted(found) for library, found in outcomes.items()} == {
        library: ["done", "ran"] for library in LIBRARIES
    }
    rows = run_rows(stocked)
    assert sorted(row["library"] for row in rows) == sorted(LIBRARIES)  # one run per library
    for row in rows:
        assert row["status"] == "finished"
        assert row["as_of_day"] == date(2026, 11, 22)
        assert row["as_of"] == "2026-11-22T02:00:00+01:00"  # decided as of the scheduled moment, not of 10:00
        assert row["summary"]["reviewed"] > 0  # type: ignore[index]
    # started again later that day (a restart, or a third process): nothing more runs
    again = start_and_finish_catch_up(build_scheduler(stocked, ruleset, fixed(MORNING.replace(hour=23))))
    assert again == {library: ["done"] for library in LIBRARIES}
    assert catch_up(stocked, ruleset, clock) == dict.fromkeys(ruleset.libraries, "done")
    assert len(run_rows(stocked)) == 3
    # the log says what ran and how much, never whose data
    assert "library kntb: night 2026-11-22 02:00 CET: run finished: " in caplog.text
    assert "reviewed" in caplog.text
    for personal in ("Tereza", "Horáková", "KN-0000001", "reader1@example.org"):
        assert personal not in caplog.text


def test_a_night_done_stays_done_until_the_next_one(stocked: Workspace, ruleset: Ruleset) -> None:
    assert catch_up(stocked, ruleset, fixed(MORNING)) == dict.fromkeys(ruleset.libraries, "ran")
    # 01:30 the next night: the latest night is still the 22nd's, done
    before = datetime(2026, 11, 23, 1, 30, tzinfo=PRAGUE)
    assert catch_up(stocked, ruleset, fixed(before)) == dict.fromkeys(ruleset.libraries, "done")
    # the 23rd's 02:00 has come (the cron job firing, or a start after it): that night runs, once
    after = datetime(2026, 11, 23, 2, 0, 5, tzinfo=PRAGUE)
    assert run_latest_night(stocked, ruleset, "kntb", fixed(after)) == "ran"
    assert run_latest_night(stocked, ruleset, "kntb", fixed(after)) == "done"
    assert [row["as_of_day"] for row in run_rows(stocked, "kntb")] == [date(2026, 11, 22), date(2026, 11, 23)]


def test_a_nightly_runs_summary_names_the_scheduler_as_its_starter(stocked: Workspace, ruleset: Ruleset) -> None:
    run_latest_night(stocked, ruleset, "kntb", fixed(MORNING))

    (row,) = run_rows(stocked, "kntb")
    assert row["summary"]["started_by"] == {"type": "scheduler", "id": None, "role": None}  # type: ignore[index]


def test_a_dry_run_or_an_unfinished_run_does_not_make_the_night_done(stocked: Workspace, ruleset: Ruleset) -> None:
    run_library(stocked.engine, ruleset, stocked.master, "kntb", NIGHT, dry_run=True)
    with stocked.engine.begin() as connection:  # a run killed that night, left 'interrupted'
        connection.execute(
            runs.insert().values(
                id="00000000-0000-0000-0000-000000000001", library="kntb", as_of=NIGHT.isoformat(),
                as_of_day=NIGHT.date(), dry_run=False, full=False, policy_revision=ruleset.revision,
                status="interrupted", started_at=datetime(2026, 11, 22, 1, 0, tzinfo=UTC),
            )
        )  # fmt: skip
    assert nightly_job(stocked, ruleset, "kntb", NIGHT) == "ran"
    assert [row["status"] for row in run_rows(stocked, "kntb")] == ["interrupted", "finished"]


def test_two_concurrent_jobs_for_the_same_library_and_night_run_it_once(
    stocked: Workspace, second_process: Workspace, ruleset: Ruleset
) -> None:
    start = threading.Barrier(2)
    outcomes: list[str] = []

    def job(work: Workspace) -> None:
        start.wait()
        outcomes.append(nightly_job(work, ruleset, "svkpk", NIGHT, wait=60))

    threads = [threading.Thread(target=job, args=(work,)) for work in (stocked, second_process)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert sorted(outcomes) == ["done", "ran"]
    rows = run_rows(stocked, "svkpk")
    assert [(row["status"], row["as_of_day"]) for row in rows] == [("finished", date(2026, 11, 22))]


def test_a_run_in_progress_is_logged_not_raised(
    stocked: Workspace, ruleset: Ruleset, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="kodex.scheduler")
    with library_lock(stocked.engine, "zdirec", "11111111-1111-1111-1111-111111111111"):  # e.g. `kodex run`
        assert nightly_job(stocked, ruleset, "zdirec", NIGHT, wait=0) == "busy"
    assert "library zdirec: night 2026-11-22 02:00 CET: another run held the lock" in caplog.text
    assert run_rows(stocked, "zdirec") == []
    assert nightly_job(stocked, ruleset, "zdirec", NIGHT, wait=0) == "ran"  # once it is free, the night runs
