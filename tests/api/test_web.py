"""The web service: GET /health, and `kodex serve` on the command line."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from fastapi.testclient import TestClient
from sqlalchemy import create_engine
from typer.testing import CliRunner

from kodex.api.cli import app
from kodex.api.web import create_app
from kodex.rules.ruleset import Ruleset
from kodex.services.scheduler import build_scheduler, nightly_job
from kodex.services.setup import Workspace

LIBRARIES = {"zdirec", "kntb", "svkpk"}
PRAGUE = ZoneInfo("Europe/Prague")


def test_health_says_the_database_answers_and_which_policy_is_active(workspace: Workspace, ruleset: Ruleset) -> None:
    response = TestClient(create_app(workspace, ruleset)).get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body == {
        "status": "ok",
        "database": "ok",
        "policy_revision": ruleset.revision,
        "libraries": {library: {"next_run": None, "last_run": None} for library in LIBRARIES},
    }


def test_health_gives_each_librarys_next_and_last_run(workspace: Workspace, ruleset: Ruleset) -> None:
    night = datetime(2026, 11, 22, 2, 0, tzinfo=PRAGUE)
    assert nightly_job(workspace, ruleset, "kntb", night) == "ran"
    scheduler = build_scheduler(workspace, ruleset, catch_up_on_start=False)
    scheduler.start(paused=True)  # next run times are set; nothing runs
    try:
        body = TestClient(create_app(workspace, ruleset, scheduler)).get("/health").json()
    finally:
        scheduler.shutdown(wait=False)
    for library in LIBRARIES:
        next_run = datetime.fromisoformat(body["libraries"][library]["next_run"])
        assert next_run.astimezone(PRAGUE).time().isoformat() == "02:00:00"
        assert next_run > datetime.now(PRAGUE)
    last = body["libraries"]["kntb"]["last_run"]
    assert last["as_of"] == "2026-11-22T02:00:00+01:00"
    assert last["status"] == "finished"
    assert datetime.fromisoformat(last["finished_at"]).tzinfo is not None
    assert body["libraries"]["svkpk"]["last_run"] is None


def test_health_is_503_when_the_database_does_not_answer(
    workspace: Workspace, ruleset: Ruleset, tmp_path: Path
) -> None:
    gone = create_engine(f"sqlite:///{tmp_path / 'no such directory' / 'kodex.sqlite3'}")
    response = TestClient(create_app(Workspace(gone, workspace.master, workspace.settings), ruleset)).get("/health")
    assert response.status_code == 503
    body = response.json()
    assert (body["status"], body["database"], body["policy_revision"]) == (
        "unavailable",
        "unreachable",
        ruleset.revision,
    )
    assert set(body["libraries"]) == LIBRARIES


def test_serve_help_says_what_runs_when_and_where_the_schedule_is_set() -> None:
    result = CliRunner().invoke(app, ["serve", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for said in ("GET /health", "caught up once", "KODEX_SCHEDULE_TIME", "[schedule]", "02:00", "--no-scheduler"):
        assert said in result.output


def test_serve_refuses_to_start_without_a_store(kodex_env: dict[str, str]) -> None:
    result = CliRunner().invoke(app, ["serve", "--no-scheduler"])
    assert result.exit_code == 7, result.output
