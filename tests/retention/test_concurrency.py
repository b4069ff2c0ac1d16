"""One run per library at a time: two concurrent runs act on each subject exactly once; a busy library says so.

Issue 4: "one run per library at a time ... two concurrent runs on PostgreSQL act on each subject exactly once."
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from kodex.retention.locking import library_lock
from kodex.rules.ruleset import Ruleset
from kodex.services.setup import Workspace
from kodex.store.schema import decision_log as decisions
from kodex.store.schema import plan_items, runs
from tests.retention.support import (
    import_file,
    run,
    snapshot,
)
from tests.support import ROOT, SAMPLE, child_env, on_postgresql, start_kodex

RUN = ["run", "--library", "svkpk", "--as-of", "2026-11-22"]


@pytest.mark.skipif(not on_postgresql(), reason="runs on several machines share a PostgreSQL store only")
def test_two_concurrent_runs_of_a_library_act_on_each_subject_exactly_once(
    workspace: Workspace, ruleset: Ruleset, kodex_env: dict[str, str], tmp_path: Path
) -> None:
    records = tmp_path / "population.jsonl"
    with records.open("w", encoding="utf-8") as out:
        subprocess.run(
            [sys.executable, "-m", "bench.synthetic", "--readers", "900", "--seed", "4", "--camera-days", "10"],
            cwd=ROOT, stdout=out, check=True, timeout=120,
        )  # fmt: skip
    import_file(workspace, ruleset, records)
    dry = run(workspace, ruleset, "svkpk", dry_run=True)  # what one run does (changes nothing)
    with workspace.engine.connect() as connection:
        planned = Counter(
            tuple(r)
            for r in connection.execute(
                select(plan_items.c.subject, plan_items.c.rule, plan_items.c.action, plan_items.c.outcome).where(
                    plan_items.c.run_id == dry.run_id
                )
            )
        )
    assert sum(planned.values()) > 100
    assert any(action == "anonymise" for _, _, action, _ in planned)

    # both runs start while the test holds the lock, and race for it the moment it is let go
    url = kodex_env["KODEX_DATABASE_URL"]
    names = ["kodex-run-a", "kodex-run-b"]
    processes: list[subprocess.Popen[str]] = []
    try:
        with library_lock(workspace.engine, "svkpk", "the test", wait=60):
            processes = [
                start_kodex(
                    [*RUN, "--wait", "60"],
                    child_env(kodex_env, KODEX_BATCH_SIZE="50", KODEX_DATABASE_URL=f"{url}&application_name={name}"),
                )
                for name in names
            ]
            deadline = time.monotonic() + 60
            while True:  # both have opened the store: they are at the lock
                with workspace.engine.connect() as connection:
                    seen = connection.execute(
                        text(
                            "SELECT count(DISTINCT application_name) FROM pg_stat_activity "
                            "WHERE application_name = ANY(:names)"
                        ),
                        {"names": names},
                    ).scalar_one()
                if seen == 2:
                    break
                assert time.monotonic() < deadline and all(p.poll() is None for p in processes)
                time.sleep(0.05)
            time.sleep(1.0)
        outcomes = [p.communicate(timeout=120) for p in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.communicate()
    assert [p.returncode for p in processes] == [0, 0], outcomes

    with workspace.engine.connect() as connection:
        both = connection.execute(
            select(runs).where(runs.c.library == "svkpk", runs.c.dry_run.is_(False)).order_by(runs.c.started_at)
        ).all()
        assert [r.status for r in both] == ["finished", "finished"]
        assert both[0].finished_at <= both[1].started_at  # one after the other, never at once
        logged = connection.execute(
            select(
                decisions.c.run_id, decisions.c.subject, decisions.c.rule, decisions.c.action, decisions.c.outcome
            ).where(decisions.c.kind == "decision")
        ).all()
    assert Counter((d.subject, d.rule, d.action, d.outcome) for d in logged) == planned  # each subject once
    assert both[1].summary["reviewed"] == 0 and not [d for d in logged if d.run_id == both[1].id]
    anonymised_by: dict[str, set[str]] = {}
    for d in logged:
        if d.action == "anonymise":
            anonymised_by.setdefault(d.subject, set()).add(d.run_id)
    assert anonymised_by and all(len(by) == 1 for by in anonymised_by.values())
    with workspace.engine.connect() as connection:
        twice = connection.execute(
            select(decisions.c.subject)
            .group_by(decisions.c.subject, decisions.c.subject_type, decisions.c.rule, decisions.c.action,
                      decisions.c.as_of)
            .where(decisions.c.kind == "decision")
            .having(func.count() > 1)
        ).all()  # fmt: skip
    assert twice == []


def test_without_wait_a_second_run_exits_8_while_the_first_holds_the_lock(
    workspace: Workspace, ruleset: Ruleset, kodex_env: dict[str, str]
) -> None:
    import_file(workspace, ruleset, SAMPLE)
    env = child_env(kodex_env)

    with library_lock(workspace.engine, "svkpk", "the first run", wait=60):
        before = snapshot(workspace.engine)
        started = time.monotonic()
        processes = [start_kodex(RUN, env), start_kodex([*RUN, "--wait", "1"], env)]
        outcomes = [p.communicate(timeout=120) for p in processes]
        took = time.monotonic() - started
        after = snapshot(workspace.engine)

    for process, (_, err) in zip(processes, outcomes, strict=True):
        assert process.returncode == 8, err
        assert "run in progress" in err and "another run is in progress" in err and "--wait" in err
        assert "Traceback" not in err
    assert took >= 1.0  # the one told to wait did wait
    assert after == before  # the refused runs touched nothing

    result = run(workspace, ruleset, "svkpk")  # once the lock is free, the run goes ahead
    assert result.reviewed > 0
