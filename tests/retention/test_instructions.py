"""Issue 18, the instruction feed from the night's side: one instruction per applied action (never twice, across
re-runs and crashes), verification on the next import (done, yet the data came back: not_carried_out), requests
that wait for their instruction, and the instruction counts in the run's summary.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from kodex.errors import Conflict, InvalidRequest
from kodex.rules.actions import INSTRUCTED
from kodex.rules.ruleset import Ruleset
from kodex.services.instructions import Instruction, list_instructions, record_outcome
from kodex.services.requests import file_request, list_requests
from kodex.services.setup import Workspace
from kodex.store.schema import decision_log, instructions, readers
from tests.retention.support import (
    AS_OF,
    LAPSED,
    clock_at,
    import_file,
    import_lines,
    loan,
    person,
    reader,
    recording,
    run,
    run_all,
    with_recordings,
)
from tests.retention.test_crash import BATCH, RUN, kill_after_progress, population
from tests.support import child_env, kodex_process, ok

INTEGRATION = {"type": "user", "id": "u-integration", "role": "librarian"}
ENDED = "2026-11-10T11:00:00+01:00"  # a recording whose 7 days are over at the run of 22 November
GUARDIAN = {"first_name": "Petr", "last_name": "Veselý", "address": "Plzeň, Husova 9", "id_document": "OP 77"}
SIXTEEN = person("svkpk", "SV-16", category="student", birth_date="2010-05-01", renewed_at="2026-05-01", debt=0,
                 active_loans=0, guardian=GUARDIAN)  # fmt: skip
HISTORY = [
    person("zdirec", "ZD-1", renewed_at="2026-02-01", debt=0, active_loans=1),
    loan("zdirec", "L-1", "ZD-1", returned_at="2026-02-01"),
    loan("zdirec", "L-2", "ZD-1", returned_at="2026-03-01"),
    loan("zdirec", "L-3", "ZD-1", due_at="2026-12-01"),  # still out: it stays, in kodex and in the library system
]


def instructed(work: Workspace, ruleset: Ruleset, library: str) -> list[Instruction]:
    return list_instructions(work.engine, ruleset, work.master, library)


def applied_decisions(work: Workspace) -> Counter[str]:
    """The ids of the log's applied decisions of instructed actions (each once: a Counter shows a twice)."""
    with work.engine.connect() as connection:
        return Counter(
            connection.execute(
                select(decision_log.c.id).where(
                    decision_log.c.kind == "decision",
                    decision_log.c.outcome == "applied",
                    decision_log.c.action.in_(list(INSTRUCTED)),
                )
            ).scalars()
        )


def instruction_decisions(work: Workspace) -> Counter[str]:
    with work.engine.connect() as connection:
        return Counter(connection.execute(select(instructions.c.decision_id)).scalars())


def done(work: Workspace, ruleset: Ruleset, library: str, instruction: Instruction) -> None:
    record_outcome(work.engine, ruleset, work.master, library, instruction.id, "done", actor=INTEGRATION)


def state(work: Workspace, ruleset: Ruleset, library: str, instruction: Instruction) -> tuple[str, str | None]:
    (now,) = [i for i in instructed(work, ruleset, library) if i.id == instruction.id]
    return now.state, now.outcome_code


@pytest.fixture
def cctv(workspace: Workspace, tmp_path: Path) -> Workspace:
    return with_recordings(workspace, tmp_path / "cctv")


# -- one instruction per applied action ---------------------------------------------------------------------------


def test_a_night_writes_one_instruction_per_applied_action_none_again_at_a_rerun_or_a_later_run(
    cctv: Workspace, ruleset: Ruleset
) -> None:
    video = cctv.settings.recordings.folder("svkpk") / "cam-1.mp4"
    video.write_bytes(b"video")
    import_lines(cctv, ruleset, [LAPSED, SIXTEEN, recording("cam-1", ENDED, video), *HISTORY])
    file_request(cctv.engine, ruleset, cctv.master, "zdirec", "ZD-1", "loan_history_erasure", date(2026, 11, 15))

    run_all(cctv, ruleset)

    decisions = applied_decisions(cctv)
    assert instruction_decisions(cctv) == decisions  # the same decision ids, each once
    actions = Counter(i.action for library in ("svkpk", "zdirec") for i in instructed(cctv, ruleset, library))
    assert actions >= Counter({"anonymise": 1, "erase_guardian_data": 1, "purge": 1, "erase_loan_history": 1})

    run_all(cctv, ruleset)  # the same as_of again
    run_all(cctv, ruleset, AS_OF + timedelta(days=1), full=True)  # and the next night, everyone reviewed
    assert applied_decisions(cctv) == decisions
    assert instruction_decisions(cctv) == decisions


def test_a_run_killed_mid_run_leaves_no_decision_without_its_instruction_nor_one_without_its_decision(
    workspace: Workspace, ruleset: Ruleset, kodex_env: dict[str, str], tmp_path: Path
) -> None:
    import_file(workspace, ruleset, population(tmp_path))
    env = child_env(kodex_env, KODEX_BATCH_SIZE=str(BATCH))

    kill_after_progress(workspace.engine, env, 2 * BATCH)
    killed = applied_decisions(workspace)
    assert killed and instruction_decisions(workspace) == killed  # whole batches: both, or neither

    finished = kodex_process(RUN, env)
    assert finished.returncode == 0, finished.stderr
    after = applied_decisions(workspace)
    assert set(after) > set(killed) and max(after.values()) == 1
    assert instruction_decisions(workspace) == after


# -- requests wait for their instruction --------------------------------------------------------------------------


def test_a_request_stays_open_waiting_for_its_instruction_writes_it_once_and_is_done_when_the_instruction_is(
    workspace: Workspace, ruleset: Ruleset
) -> None:
    import_lines(workspace, ruleset, HISTORY)
    request, _ = file_request(
        workspace.engine, ruleset, workspace.master, "zdirec", "ZD-1", "loan_history_erasure", date(2026, 11, 15)
    )

    for night in range(3):  # the request no longer drives the rules once it waits: no second instruction
        run(workspace, ruleset, "zdirec", AS_OF + timedelta(days=night), full=True)
        (erasure,) = instructed(workspace, ruleset, "zdirec")
        (waiting,) = list_requests(workspace.engine, "zdirec")
        assert (waiting.id, waiting.status, waiting.instruction) == (request.id, "open", erasure.id)
    assert erasure.action == "erase_loan_history" and erasure.due_on is not None
    assert erasure.due_on <= request.due_on  # no later than the request's month (GDPR Art. 12(3))

    done(workspace, ruleset, "zdirec", erasure)
    (finished,) = list_requests(workspace.engine, "zdirec")
    assert (finished.status, finished.instruction, finished.done_at is not None) == ("done", erasure.id, True)


def test_an_anonymised_readers_request_stays_open_unlinked_until_its_instruction_is_done(
    workspace: Workspace, ruleset: Ruleset
) -> None:
    import_lines(workspace, ruleset, [LAPSED])
    file_request(workspace.engine, ruleset, workspace.master, "svkpk", "SV-LAPSED", "erasure", date(2026, 11, 15))

    run(workspace, ruleset, "svkpk")
    run(workspace, ruleset, "svkpk", AS_OF + timedelta(days=1), full=True)

    (anonymise,) = instructed(workspace, ruleset, "svkpk")
    (waiting,) = list_requests(workspace.engine, "svkpk")
    assert (waiting.reader, waiting.status, waiting.instruction) == (None, "open", anonymise.id)
    done(workspace, ruleset, "svkpk", anonymise)
    assert [r.status for r in list_requests(workspace.engine, "svkpk")] == ["done"]


# -- verification on the next import ------------------------------------------------------------------------------


def test_an_anonymised_reader_arriving_again_with_personal_data_makes_its_done_instruction_not_carried_out(
    workspace: Workspace, ruleset: Ruleset
) -> None:
    import_lines(workspace, ruleset, [LAPSED])
    run(workspace, ruleset, "svkpk")
    (anonymise,) = instructed(workspace, ruleset, "svkpk")

    assert import_lines(workspace, ruleset, [LAPSED]).not_carried_out == Counter()  # pending: simply not done yet
    done(workspace, ruleset, "svkpk", anonymise)
    stripped = reader("svkpk", "SV-LAPSED", renewed_at="2023-01-01", personal={"last_name": None})
    assert import_lines(workspace, ruleset, [stripped]).not_carried_out == Counter()  # carried out: nothing left
    assert state(workspace, ruleset, "svkpk", anonymise) == ("done", None)

    summary = import_lines(workspace, ruleset, [LAPSED])

    assert summary.not_carried_out == Counter({"anonymise": 1})
    assert state(workspace, ruleset, "svkpk", anonymise) == ("not_carried_out", "personal_data_imported")
    with workspace.engine.connect() as connection:  # a re-import never revives what kodex anonymised
        row = connection.execute(select(readers).where(readers.c.id == "SV-LAPSED")).one()
    assert (row.state, row.sealed, row.wrapped_key, row.pseudonym) == ("anonymised", None, None, None)
    assert import_lines(workspace, ruleset, [LAPSED]).not_carried_out == Counter()  # counted once
    done(workspace, ruleset, "svkpk", anonymise)  # the library system may report it done again
    assert state(workspace, ruleset, "svkpk", anonymise)[0] == "done"


def test_an_erased_loan_arriving_again_makes_the_readers_done_erasure_not_carried_out_and_reopens_the_request(
    workspace: Workspace, ruleset: Ruleset
) -> None:
    import_lines(workspace, ruleset, HISTORY)
    file_request(
        workspace.engine, ruleset, workspace.master, "zdirec", "ZD-1", "loan_history_erasure", date(2026, 11, 15)
    )
    run(workspace, ruleset, "zdirec")
    (erasure,) = instructed(workspace, ruleset, "zdirec")
    done(workspace, ruleset, "zdirec", erasure)
    assert import_lines(workspace, ruleset, HISTORY[:1]).not_carried_out == Counter()  # the loans are gone there

    summary = import_lines(workspace, ruleset, HISTORY)

    assert (summary.gone["loan"], summary.not_carried_out) == (2, Counter({"erase_loan_history": 1}))
    assert state(workspace, ruleset, "zdirec", erasure) == ("not_carried_out", "erased_loan_imported")
    (request,) = list_requests(workspace.engine, "zdirec")
    assert (request.status, request.instruction, request.done_at) == ("open", erasure.id, None)
    done(workspace, ruleset, "zdirec", erasure)
    assert [r.status for r in list_requests(workspace.engine, "zdirec")] == ["done"]


def test_a_purged_recording_arriving_again_makes_its_done_purge_not_carried_out(
    cctv: Workspace, ruleset: Ruleset
) -> None:
    video = cctv.settings.recordings.folder("svkpk") / "cam-1.mp4"
    video.write_bytes(b"video")
    import_lines(cctv, ruleset, [recording("cam-1", ENDED, video)])
    run(cctv, ruleset, "svkpk")
    (purge,) = instructed(cctv, ruleset, "svkpk")
    done(cctv, ruleset, "svkpk", purge)

    summary = import_lines(cctv, ruleset, [recording("cam-1", ENDED, video)])

    assert (summary.gone["camera_recording"], summary.not_carried_out) == (1, Counter({"purge": 1}))
    assert state(cctv, ruleset, "svkpk", purge) == ("not_carried_out", "purged_recording_imported")


def test_guardian_data_arriving_again_after_their_erasure_make_its_done_instruction_not_carried_out(
    workspace: Workspace, ruleset: Ruleset
) -> None:
    import_lines(workspace, ruleset, [SIXTEEN])
    run(workspace, ruleset, "svkpk")
    (erasure,) = instructed(workspace, ruleset, "svkpk")
    done(workspace, ruleset, "svkpk", erasure)
    assert import_lines(workspace, ruleset, [{**SIXTEEN, "guardian": None}]).not_carried_out == Counter()

    assert import_lines(workspace, ruleset, [SIXTEEN]).not_carried_out == Counter({"erase_guardian_data": 1})
    assert state(workspace, ruleset, "svkpk", erasure) == ("not_carried_out", "guardian_data_imported")


def test_not_carried_out_after_done_is_the_imports_alone_and_is_logged_without_personal_data(
    workspace: Workspace, ruleset: Ruleset
) -> None:
    import_lines(workspace, ruleset, [LAPSED])
    run(workspace, ruleset, "svkpk")
    (anonymise,) = instructed(workspace, ruleset, "svkpk")
    done(workspace, ruleset, "svkpk", anonymise)

    with pytest.raises(InvalidRequest):  # not_carried_out is the import's finding, never a caller's word
        record_outcome(
            workspace.engine, ruleset, workspace.master, "svkpk", anonymise.id, "not_carried_out", actor=INTEGRATION
        )
    with pytest.raises(Conflict):
        record_outcome(
            workspace.engine, ruleset, workspace.master, "svkpk", anonymise.id, "rejected", actor=INTEGRATION
        )
    import_lines(workspace, ruleset, [LAPSED])

    with workspace.engine.connect() as connection:
        entries = connection.execute(
            select(decision_log.c.entry)
            .where(decision_log.c.kind == "instruction_outcome")
            .order_by(decision_log.c.seq)
        ).scalars()
        logged = [json.loads(entry) for entry in entries]
    assert [(e["outcome"], e["actor"]["type"], e["details"]["code"]) for e in logged] == [
        ("done", "user", None), ("not_carried_out", "import", "personal_data_imported")
    ]  # fmt: skip
    text = json.dumps(logged, ensure_ascii=False)
    assert not any(value in text for value in ("SV-LAPSED", "Jana", "Malá", "Plzeň", "OP 1"))


# -- escalation in the run's summary -------------------------------------------------------------------------------


def test_the_run_summary_counts_the_librarys_pending_overdue_and_not_carried_out_instructions(
    workspace: Workspace, ruleset: Ruleset, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock_at(monkeypatch, AS_OF)
    import_lines(workspace, ruleset, [LAPSED, SIXTEEN])
    first = run(workspace, ruleset, "svkpk")
    assert first.summary()["instructions"] == {
        "pending": 2,
        "overdue": 0,
        "rejected": 0,
        "failed": 0,
        "not_carried_out": 0,
    }

    erasure = next(i for i in instructed(workspace, ruleset, "svkpk") if i.action == "erase_guardian_data")
    done(workspace, ruleset, "svkpk", erasure)
    import_lines(workspace, ruleset, [SIXTEEN])  # its guardian's data still there
    later = AS_OF + timedelta(days=30)  # past the week the policy gives the anonymisation
    clock_at(monkeypatch, later)
    summary = run(workspace, ruleset, "svkpk", later).summary()

    # the anonymisation, still pending, is late; the guardian's erasure was not carried out
    assert summary["instructions"] == {"pending": 1, "overdue": 1, "rejected": 0, "failed": 0, "not_carried_out": 1}
    with workspace.engine.connect() as connection:
        logged = json.loads(
            connection.execute(
                select(decision_log.c.entry).where(decision_log.c.kind == "run_summary").order_by(decision_log.c.seq)
            )
            .scalars()
            .all()[-1]
        )
    assert logged["details"]["instructions"] == summary["instructions"]


def test_kodex_run_and_kodex_import_say_what_was_not_carried_out_and_what_is_overdue(
    workspace: Workspace, ruleset: Ruleset, tmp_path: Path
) -> None:
    file = tmp_path / "lapsed.jsonl"
    file.write_text(json.dumps(LAPSED) + "\n", encoding="utf-8")
    ok("import", str(file))
    ok("run", "--library", "svkpk", "--as-of", AS_OF.isoformat())
    (anonymise,) = instructed(workspace, ruleset, "svkpk")
    done(workspace, ruleset, "svkpk", anonymise)

    imported = ok("import", str(file)).output
    ran = ok("run", "--library", "svkpk").output  # today: the real clock, weeks past the week it was due in

    assert "1 anonymise instruction(s) not carried out" in " ".join(imported.split())
    assert "svkpk: 1 instruction(s) NOT CARRIED OUT" in " ".join(ran.split())
