"""Crash safety with a real process: kill -9 a `kodex run` mid-run, rerun, and compare with an uninterrupted run.

Issue 4: "crash-safe (kill -9 at any moment, rerun, and the end state equals an uninterrupted run's — no
subject half-anonymised, no decision recorded twice)".
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select

from kodex.rules.ruleset import Ruleset
from kodex.services.setup import Workspace
from kodex.store.schema import (
    camera_recordings,
    exceptions,
    findings,
    incidents,
    loans,
    purged_recordings,
    readers,
    runs,
)
from kodex.store.schema import decision_log as decisions
from tests.retention.support import import_file, run_all
from tests.support import ROOT, child_env, fresh_installation, kodex_process, on_postgresql, start_kodex

# a population whose run takes a few seconds in batches of 50 on either engine (PostgreSQL is slower per batch)
READERS = 1200 if on_postgresql() else 2500
BATCH = 50
RUN = ["run", "--as-of", "2026-11-22", "--wait", "60"]


def population(tmp_path: Path) -> Path:
    path = tmp_path / "population.jsonl"
    with path.open("w", encoding="utf-8") as out:
        subprocess.run(
            [sys.executable, "-m", "bench.synthetic", "--readers", str(READERS), "--seed", "20261122",
             "--camera-days", "20"],
            cwd=ROOT, stdout=out, check=True, timeout=120,
        )  # fmt: skip
    return path


def decided(engine: Engine) -> int:
    with engine.connect() as connection:
        return connection.execute(select(func.count()).where(decisions.c.kind == "decision")).scalar_one()


def kill_after_progress(engine: Engine, env: dict[str, str], beyond: int) -> int:
    """Start `kodex run`, SIGKILL it as soon as more than `beyond` decisions are committed; the count then."""
    process = start_kodex(RUN, env)
    deadline = time.monotonic() + 120
    try:
        while decided(engine) <= beyond:
            assert process.poll() is None, f"the run ended before it could be killed: {process.communicate()}"
            assert time.monotonic() < deadline, "the run committed nothing in time"
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL
    return decided(engine)


def state(engine: Engine) -> dict[str, Any]:
    """The end state, keyed by record ids (pseudonyms are random, so they are mapped back where they still exist)."""
    with engine.connect() as connection:
        reader_rows = list(connection.execute(select(readers)))
        recording_rows = list(connection.execute(select(camera_recordings)))
        subject = {r.pseudonym: ("reader", r.library, r.id) for r in reader_rows if r.pseudonym is not None}
        subject.update({r.pseudonym: ("camera_recording", r.library, r.id) for r in recording_rows})
        named = {f"exception {r.pseudonym}": f"exception {r.id}" for r in connection.execute(select(exceptions))}
        finding_rows = list(connection.execute(select(findings)))  # bases name exceptions by pseudonym: per store
        decision_rows = list(connection.execute(select(decisions).where(decisions.c.kind == "decision")))
        return {
            "readers": {
                (r.library, r.id): (
                    r.state, r.blocked, r.wrapped_key is None, r.sealed is None, r.pseudonym is None,
                    r.next_review, r.reviewed_as_of, r.facts,
                )
                for r in reader_rows
            },
            "recordings": {(r.library, r.id): (r.next_review, r.purge_failures) for r in recording_rows},
            "purged": set(connection.execute(select(purged_recordings.c.library, purged_recordings.c.id)).tuples()),
            "loans": dict(connection.execute(select(loans.c.id, loans.c.reader)).tuples().all()),
            "incidents": dict(connection.execute(select(incidents.c.id, incidents.c.reader)).tuples().all()),
            "findings of known subjects": Counter(
                (*subject[f.subject], f.rule, f.action, f.effect, f.status, named.get(f.basis, f.basis), f.opened_as_of)
                for f in finding_rows
                if f.subject in subject
            ),
            "findings of anonymised subjects": Counter(
                (f.library, f.rule, f.action, f.status) for f in finding_rows if f.subject not in subject
            ),
            "decisions of known subjects": Counter(
                (*subject[d.subject], d.rule, d.action, d.outcome, d.as_of) for d in decision_rows if d.subject in subject
            ),
            "decisions": Counter(
                (d.library, d.subject_type, d.rule, d.action, d.outcome, d.as_of) for d in decision_rows
            ),
        }  # fmt: skip


def test_a_run_killed_mid_run_and_rerun_ends_as_an_uninterrupted_run(
    workspace: Workspace, ruleset: Ruleset, kodex_env: dict[str, str], tmp_path: Path
) -> None:
    records = population(tmp_path)
    import_file(workspace, ruleset, records)
    env = child_env(kodex_env, KODEX_BATCH_SIZE=str(BATCH))

    # killed twice at different points, then run to the end
    first = kill_after_progress(workspace.engine, env, 0)
    with workspace.engine.connect() as connection:
        assert connection.execute(select(runs.c.status)).scalars().all() == ["running"]  # killed mid-run
    kill_after_progress(workspace.engine, env, first + 5 * BATCH)
    finished = kodex_process(RUN, env)
    assert finished.returncode == 0, finished.stderr

    with fresh_installation(tmp_path / "uninterrupted", ruleset) as (work, _):
        import_file(work, ruleset, records)
        run_all(work, ruleset, batch_size=BATCH)
        expected = state(work.engine)

    got = state(workspace.engine)
    assert sum(expected["decisions"].values()) > 500  # a population that calls for plenty
    assert {o for *_, o, _ in expected["decisions"]} >= {"applied", "reported"}
    for part in expected:
        assert got[part] == expected[part], part

    with workspace.engine.connect() as connection:
        twice = connection.execute(
            select(decisions.c.subject, decisions.c.rule, decisions.c.action, decisions.c.as_of)
            .group_by(decisions.c.library, decisions.c.subject_type, decisions.c.subject, decisions.c.rule,
                      decisions.c.action, decisions.c.as_of)
            .where(decisions.c.kind == "decision")
            .having(func.count() > 1)
        ).all()  # fmt: skip
        assert twice == []
        for row in connection.execute(select(readers)):  # nobody half-anonymised
            gone = (row.wrapped_key is None, row.sealed is None, row.pseudonym is None, row.state == "anonymised")
            assert gone in {(True,) * 4, (False,) * 4}, (row.library, row.id, gone)
        statuses = Counter(connection.execute(select(runs.c.status)).scalars())
        assert statuses["running"] == 0 and statuses["interrupted"] >= 2
        assert statuses["finished"] >= len(ruleset.libraries)
