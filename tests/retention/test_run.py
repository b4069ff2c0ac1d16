"""The nightly run: each action's effect on the store, idempotency, dry runs, failing closed, review dates.

Issue 4: "each action's effect on the store; idempotency (a second run at the same as_of changes nothing and
records nothing new); a dry run changes nothing and stores and prints the plan; fail closed per subject;
each subject's next review date, --full sweeps everyone; a recording file that cannot be deleted is recorded
as a failed purge and retried the next night; its row stays."
"""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select, update
from sqlalchemy import text as sql_text
from sqlalchemy.dialects import postgresql

import kodex.retention.run
import kodex.retention.strategies
from kodex.rules.ruleset import Ruleset
from kodex.services.access_copy import access_copy
from kodex.services.setup import Workspace
from kodex.store.repositories.sweep import Due
from kodex.store.schema import (
    camera_recordings,
    findings,
    loans,
    metadata,
    plan_items,
    purged_recordings,
    readers,
    runs,
)
from kodex.store.schema import decision_log as decisions
from tests.retention.support import (
    AS_OF,
    LAPSED,
    import_file,
    import_lines,
    incident,
    loan,
    reader,
    recording,
    run,
    run_all,
    snapshot,
    with_recordings,
)
from tests.support import SAMPLE, on_postgresql

NEXT_DAY = AS_OF + timedelta(days=1)
COMPLETE = {"first_name": "Jana", "last_name": "Malá", "address": "Plzeň, Smetanova 3", "id_document": "OP 1"}


def row_of(work: Workspace, record_id: str) -> Any:
    with work.engine.connect() as connection:
        return connection.execute(select(readers).where(readers.c.id == record_id)).one()


def recording_of(work: Workspace, record_id: str) -> Any:
    with work.engine.connect() as connection:
        return connection.execute(select(camera_recordings).where(camera_recordings.c.id == record_id)).one_or_none()


def decisions_of(work: Workspace, pseudonym: str) -> list[tuple[str, str, str, str]]:
    """(rule, action, outcome, as_of) of every decision about one subject, in order."""
    query = (
        select(decisions.c.rule, decisions.c.action, decisions.c.outcome, decisions.c.as_of)
        .where(decisions.c.subject == pseudonym, decisions.c.kind == "decision")  # not reads of its Art. 15 copy
        .order_by(decisions.c.seq)
    )
    with work.engine.connect() as connection:
        return [tuple(r) for r in connection.execute(query)]


def count(work: Workspace, table: Any) -> int:
    with work.engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(table)).scalar_one()


def decision_count(work: Workspace) -> int:
    """Decision entries in the log (each run also logs its summary: not counted)."""
    with work.engine.connect() as connection:
        return connection.execute(select(func.count()).where(decisions.c.kind == "decision")).scalar_one()


LOG = {"decision_log", "log_heads", "log_subtrees", "log_checkpoints"}  # each run appends its summary and signs


def without(row: Any, *columns: str) -> dict[str, Any]:
    return {k: v for k, v in row._mapping.items() if k not in columns}


# -- each action's effect on the store -------------------------------------------------------------


def test_anonymise_destroys_the_identity_keeps_statistics_and_detaches_loans(
    workspace: Workspace, ruleset: Ruleset
) -> None:
    erasing = reader(
        "zdirec", "ZD-1", category="adult", birth_date="1970-02-03", renewed_at="2026-01-04", debt=0,
        active_loans=0, erasure_requested_at="2026-11-20", personal={"last_name": "Dvořáková", "address": "Ždírec"},
    )  # fmt: skip
    staying = reader("zdirec", "ZD-2", birth_date="1970-02-03", renewed_at="2026-01-04", debt=0, active_loans=0,
                     personal={"last_name": "Horák"})  # fmt: skip
    import_lines(
        workspace, ruleset,
        [erasing, staying, loan("zdirec", "L-1", "ZD-1", returned_at="2026-02-01"), loan("zdirec", "L-2", "ZD-2"),
         incident("zdirec", "I-1", "ZD-1", "card_lost", "2026-03-01")],
    )  # fmt: skip
    pseudonym = row_of(workspace, "ZD-1").pseudonym

    run(workspace, ruleset, "zdirec")

    row = row_of(workspace, "ZD-1")
    assert (row.state, row.wrapped_key, row.sealed, row.pseudonym) == ("anonymised", None, None, None)
    assert (row.facts["category"], row.facts["birth_year"], row.facts["renewed_at"]) == ("adult", 1970, "2026-01-04")
    assert decisions_of(workspace, pseudonym) == [("zdirec.erasure.on_request", "anonymise", "applied", "2026-11-22")]
    with workspace.engine.connect() as connection:
        assert dict(connection.execute(select(loans.c.id, loans.c.reader)).tuples().all()) == {
            "L-1": None,
            "L-2": "ZD-2",
        }
    assert access_copy(workspace.engine, workspace.master, "zdirec", "ZD-1")["incidents"] == []
    assert row_of(workspace, "ZD-2").state == "active"
    assert access_copy(workspace.engine, workspace.master, "zdirec", "ZD-2")["reader"]["personal"] == {
        "last_name": "Horák"
    }


def test_erase_guardian_data_removes_the_guardian_and_keeps_the_rest(workspace: Workspace, ruleset: Ruleset) -> None:
    guardian = {"first_name": "Petr", "last_name": "Veselý", "address": "Plzeň, Husova 9", "id_document": "OP 77"}
    sixteen = reader("svkpk", "SV-1", category="student", birth_date="2010-05-01", renewed_at="2026-05-01", debt=0,
                     active_loans=0, guardian=guardian, personal=COMPLETE)  # fmt: skip
    fourteen = reader("svkpk", "SV-2", category="child", birth_date="2012-06-01", renewed_at="2026-05-01", debt=0,
                      active_loans=0, guardian=guardian, personal=COMPLETE)  # fmt: skip
    import_lines(workspace, ruleset, [sixteen, fourteen])
    before = row_of(workspace, "SV-1")

    run(workspace, ruleset, "svkpk")

    assert decisions_of(workspace, before.pseudonym) == [
        ("svkpk.guardian.erase_at_15", "erase_guardian_data", "applied", "2026-11-22")
    ]
    copy = access_copy(workspace.engine, workspace.master, "svkpk", "SV-1")["reader"]
    assert copy.get("guardian") is None
    assert copy["personal"] == COMPLETE and copy["birth_date"] == "2010-05-01"
    after = row_of(workspace, "SV-1")
    assert after.state == "active" and after.facts["has_guardian"] is False
    assert after.sealed != before.sealed
    assert access_copy(workspace.engine, workspace.master, "svkpk", "SV-2")["reader"]["guardian"] == guardian

    run(workspace, ruleset, "svkpk", NEXT_DAY, full=True)  # nothing left to erase
    assert len(decisions_of(workspace, before.pseudonym)) == 1


def test_erase_loan_history_deletes_returned_loans_and_keeps_loans_still_out(
    workspace: Workspace, ruleset: Ruleset
) -> None:
    asking = reader("zdirec", "ZD-1", birth_date="1980-01-01", renewed_at="2026-01-04", debt=0, active_loans=1,
                    history_erasure_requested_at="2026-11-20", personal={"last_name": "Malý"})  # fmt: skip
    other = reader("zdirec", "ZD-2", birth_date="1980-01-01", renewed_at="2026-01-04", debt=0, active_loans=0,
                   personal={"last_name": "Malá"})  # fmt: skip
    import_lines(
        workspace, ruleset,
        [asking, other, loan("zdirec", "L-1", "ZD-1", returned_at="2026-02-01"),
         loan("zdirec", "L-2", "ZD-1", returned_at="2026-03-01"), loan("zdirec", "L-3", "ZD-1", due_at="2026-12-01"),
         loan("zdirec", "L-4", "ZD-2", returned_at="2026-02-01")],
    )  # fmt: skip

    run(workspace, ruleset, "zdirec")

    with workspace.engine.connect() as connection:
        assert dict(connection.execute(select(loans.c.id, loans.c.reader)).tuples().all()) == {
            "L-3": "ZD-1",
            "L-4": "ZD-2",
        }
    row = row_of(workspace, "ZD-1")
    assert row.state == "active"  # the registration stays
    assert decisions_of(workspace, row.pseudonym) == [
        ("zdirec.loan_history.erase_on_request", "erase_loan_history", "applied", "2026-11-22")
    ]
    assert access_copy(workspace.engine, workspace.master, "zdirec", "ZD-1")["reader"]["personal"] == {
        "last_name": "Malý"
    }


def test_an_erased_loan_history_does_not_come_back_with_the_next_import(workspace: Workspace, ruleset: Ruleset) -> None:
    asking = reader("zdirec", "ZD-1", birth_date="1980-01-01", renewed_at="2026-01-04", debt=0, active_loans=1,
                    history_erasure_requested_at="2026-11-20", personal={"last_name": "Malý"})  # fmt: skip
    records = [asking, loan("zdirec", "L-1", "ZD-1", returned_at="2026-02-01"), loan("zdirec", "L-2", "ZD-1")]
    import_lines(workspace, ruleset, records)
    run(workspace, ruleset, "zdirec")

    import_lines(workspace, ruleset, records)  # the library's nightly export, unchanged
    run(workspace, ruleset, "zdirec", NEXT_DAY)

    with workspace.engine.connect() as connection:
        assert list(connection.execute(select(loans.c.id)).scalars()) == ["L-2"]


def test_purge_deletes_the_file_then_the_row_and_a_reimport_does_not_bring_it_back(
    workspace: Workspace, ruleset: Ruleset, tmp_path: Path
) -> None:
    workspace = with_recordings(workspace, tmp_path / "cctv")
    cctv = workspace.settings.recordings.folder("svkpk")
    old, recent = cctv / "cam-old.mp4", cctv / "cam-recent.mp4"
    old.write_bytes(b"video")
    recent.write_bytes(b"video")
    records = [
        recording("cam-old", "2026-11-10T11:00:00+01:00", old),  # purged after 2026-11-17T11:00
        recording("cam-recent", "2026-11-20T11:00:00+01:00", recent),  # kept until 2026-11-27T11:00
    ]
    import_lines(workspace, ruleset, records)
    pseudonym = recording_of(workspace, "cam-old").pseudonym

    run(workspace, ruleset, "svkpk")

    assert not old.exists() and recording_of(workspace, "cam-old") is None
    assert recent.exists() and recording_of(workspace, "cam-recent") is not None
    assert decisions_of(workspace, pseudonym) == [("svkpk.camera.purge_after_7_days", "purge", "applied", "2026-11-22")]
    with workspace.engine.connect() as connection:
        assert list(connection.execute(select(purged_recordings.c.id)).scalars()) == ["cam-old"]

    summary = import_lines(workspace, ruleset, records)
    assert summary.gone["camera_recording"] == 1 and not summary.added
    assert recording_of(workspace, "cam-old") is None
    run(workspace, ruleset, "svkpk", NEXT_DAY)
    assert len(decisions_of(workspace, pseudonym)) == 1


def test_a_recording_file_that_cannot_be_deleted_is_a_failed_purge_retried_the_next_night(
    workspace: Workspace, ruleset: Ruleset, tmp_path: Path
) -> None:
    workspace = with_recordings(workspace, tmp_path / "cctv")
    cctv = workspace.settings.recordings.folder("svkpk")
    stuck = cctv / "stuck.mp4"  # a directory that is not empty: os.remove fails, even for root
    stuck.mkdir()
    (stuck / "segment-1").write_bytes(b"video")
    import_lines(workspace, ruleset, [recording("cam-stuck", "2026-11-10T11:00:00+01:00", stuck)])
    pseudonym = recording_of(workspace, "cam-stuck").pseudonym

    first = run(workspace, ruleset, "svkpk")

    assert first.counts == Counter({("purge", "failed"): 1})
    row = recording_of(workspace, "cam-stuck")
    assert row is not None  # the row stays
    assert (row.purge_failures, row.next_review) == (1, NEXT_DAY)
    assert stuck.exists()
    with workspace.engine.connect() as connection:
        decision = json.loads(
            connection.execute(select(decisions.c.entry).where(decisions.c.subject == pseudonym)).scalar_one()
        )
    assert decision["outcome"] == "failed" and "retried" in decision["details"]["error"]
    assert str(cctv) not in json.dumps(decision)

    run(workspace, ruleset, "svkpk")  # the same night again: not due, nothing new
    assert decisions_of(workspace, pseudonym) == [("svkpk.camera.purge_after_7_days", "purge", "failed", "2026-11-22")]

    second = run(workspace, ruleset, "svkpk", NEXT_DAY)  # the next night it is retried, and fails again
    assert second.counts == Counter({("purge", "failed"): 1})
    assert recording_of(workspace, "cam-stuck").purge_failures == 2

    shutil.rmtree(stuck)  # someone fixes it
    stuck.write_bytes(b"video")
    third = run(workspace, ruleset, "svkpk", NEXT_DAY + timedelta(days=1))
    assert third.counts == Counter({("purge", "applied"): 1})
    assert recording_of(workspace, "cam-stuck") is None and not stuck.exists()
    assert [d[2:] for d in decisions_of(workspace, pseudonym)] == [
        ("failed", "2026-11-22"),
        ("failed", "2026-11-23"),
        ("applied", "2026-11-24"),
    ]


def test_a_purge_that_succeeds_on_a_rerun_at_the_same_as_of_is_recorded(
    workspace: Workspace, ruleset: Ruleset, tmp_path: Path
) -> None:
    workspace = with_recordings(workspace, tmp_path / "cctv")
    cctv = workspace.settings.recordings.folder("svkpk")
    stuck = cctv / "stuck.mp4"
    stuck.mkdir()
    (stuck / "segment-1").write_bytes(b"video")
    import_lines(workspace, ruleset, [recording("cam-stuck", "2026-11-10T11:00:00+01:00", stuck)])
    pseudonym = recording_of(workspace, "cam-stuck").pseudonym
    run(workspace, ruleset, "svkpk")
    shutil.rmtree(stuck)

    result = run(workspace, ruleset, "svkpk", full=True)

    assert result.counts == Counter({("purge", "applied"): 1})
    assert recording_of(workspace, "cam-stuck") is None
    assert ("svkpk.camera.purge_after_7_days", "purge", "applied", "2026-11-22") in decisions_of(workspace, pseudonym)


def test_a_recording_is_purged_by_the_first_nightly_run_after_its_seven_days(
    workspace: Workspace, ruleset: Ruleset, tmp_path: Path
) -> None:
    workspace = with_recordings(workspace, tmp_path / "cctv")
    gone = workspace.settings.recordings.folder("svkpk") / "cam-1.mp4"  # no such file: the purge deletes the row
    import_lines(workspace, ruleset, [recording("cam-1", "2026-11-16T05:00:00+01:00", gone)])
    prague = timezone(timedelta(hours=1))
    nights = [datetime(2026, 11, day, 2, 0, tzinfo=prague) for day in (22, 23, 24)]

    for night in nights:
        run(workspace, ruleset, "svkpk", night)

    assert recording_of(workspace, "cam-1") is None


def test_a_recordings_own_legal_hold_keeps_it_until_the_hold_ends(
    workspace: Workspace, ruleset: Ruleset, tmp_path: Path
) -> None:
    workspace = with_recordings(workspace, tmp_path / "cctv")
    cctv = workspace.settings.recordings.folder("svkpk")
    held = cctv / "cam-held.mp4"
    held.write_bytes(b"video")
    hold = {"reason": "handed to the police", "until": "2026-11-25"}
    import_lines(workspace, ruleset, [recording("cam-held", "2026-11-10T11:00:00+01:00", held, legal_hold=hold)])
    pseudonym = recording_of(workspace, "cam-held").pseudonym

    run(workspace, ruleset, "svkpk")  # its 7 days are over, but it is held (the sealed reason read back)

    assert held.exists() and recording_of(workspace, "cam-held") is not None
    assert decisions_of(workspace, pseudonym) == [
        ("svkpk.camera.purge_after_7_days", "retain", "retained", "2026-11-22")
    ]
    run(workspace, ruleset, "svkpk", date(2026, 11, 26))  # the hold has ended
    assert not held.exists() and recording_of(workspace, "cam-held") is None


def test_block_services_then_lift_block_once_the_debt_is_paid(workspace: Workspace, ruleset: Ruleset) -> None:
    owing = reader("zdirec", "ZD-1", birth_date="1980-01-01", renewed_at="2026-01-04", debt=50, active_loans=0,
                   personal={"last_name": "Dlužná"})  # fmt: skip
    import_lines(workspace, ruleset, [owing])
    pseudonym = row_of(workspace, "ZD-1").pseudonym

    run(workspace, ruleset, "zdirec")
    assert row_of(workspace, "ZD-1").blocked is True
    assert decisions_of(workspace, pseudonym) == [
        ("zdirec.suspension.unsettled_debt", "block_services", "applied", "2026-11-22")
    ]
    run(workspace, ruleset, "zdirec", NEXT_DAY, full=True)  # still owing: nothing new
    assert len(decisions_of(workspace, pseudonym)) == 1

    import_lines(workspace, ruleset, [{**owing, "debt": 0}])
    assert row_of(workspace, "ZD-1").blocked is True  # only the run lifts a block
    run(workspace, ruleset, "zdirec", NEXT_DAY)

    row = row_of(workspace, "ZD-1")
    assert row.blocked is False and row.state == "active"
    assert decisions_of(workspace, pseudonym)[-1] == (
        "zdirec.suspension.unsettled_debt",
        "lift_block",
        "applied",
        "2026-11-23",
    )


def test_registration_expired_sets_the_reader_lapsed(workspace: Workspace, ruleset: Ruleset) -> None:
    expired = reader("svkpk", "SV-1", birth_date="1980-01-01", renewed_at="2025-01-10", debt=0, active_loans=0,
                     personal=COMPLETE)  # valid until 2026-01-09  # fmt: skip
    valid = reader("svkpk", "SV-2", birth_date="1980-01-01", renewed_at="2026-06-01", debt=0, active_loans=0,
                   personal=COMPLETE)  # fmt: skip
    import_lines(workspace, ruleset, [expired, valid])

    run(workspace, ruleset, "svkpk")

    lapsed = row_of(workspace, "SV-1")
    assert lapsed.state == "lapsed" and lapsed.wrapped_key is not None
    assert decisions_of(workspace, lapsed.pseudonym) == [
        ("svkpk.registration.one_year", "registration_expired", "applied", "2026-11-22")
    ]
    assert row_of(workspace, "SV-2").state == "active"


def test_findings_and_proposals_are_stored_open_and_never_applied(workspace: Workspace, ruleset: Ruleset) -> None:
    too_young = reader("kntb", "KN-1", birth_date="2013-01-01", renewed_at="2026-01-05", debt=0, active_loans=0,
                       personal={"first_name": "Ema", "last_name": "Malá", "address": "Zlín", "id_document": "OP 2"})  # fmt: skip
    expelled = reader("svkpk", "SV-1", birth_date="1980-01-01", renewed_at="2026-06-01", debt=0, active_loans=0,
                      personal=COMPLETE)  # fmt: skip
    import_lines(
        workspace, ruleset,
        [too_young, expelled, incident("svkpk", "I-1", "SV-1", "expelled_from_premises", "2026-01-15"),
         incident("svkpk", "I-2", "SV-1", "expelled_from_premises", "2026-10-02")],
    )  # fmt: skip
    before = {r: row_of(workspace, r) for r in ("KN-1", "SV-1")}

    run_all(workspace, ruleset)

    with workspace.engine.connect() as connection:
        stored = {
            (row.subject, row.rule): row
            for row in connection.execute(select(findings))
            if row.subject in {before["KN-1"].pseudonym, before["SV-1"].pseudonym}
        }
    rejection = stored[(before["KN-1"].pseudonym, "kntb.registration.minimum_age")]
    assert (rejection.action, rejection.effect, rejection.status) == ("reject_registration", "report", "open")
    proposal = stored[(before["SV-1"].pseudonym, "svkpk.exclusion.repeated_expulsion")]
    assert (proposal.action, proposal.effect, proposal.status, proposal.decided_by) == (
        "propose_exclusion",
        "propose",
        "open",
        "director",
    )
    assert ("svkpk.exclusion.repeated_expulsion", "propose_exclusion", "proposed", "2026-11-22") in decisions_of(
        workspace, before["SV-1"].pseudonym
    )
    assert ("kntb.registration.minimum_age", "reject_registration", "reported", "2026-11-22") in decisions_of(
        workspace, before["KN-1"].pseudonym
    )
    for record_id, row in before.items():  # never applied: the reader's row is as it was, but for its review date
        assert without(row_of(workspace, record_id), "next_review", "reviewed_as_of") == without(
            row, "next_review", "reviewed_as_of"
        )

    found = count(workspace, findings)
    decided = decision_count(workspace)
    run_all(workspace, ruleset, NEXT_DAY, full=True)  # still standing: neither reopened nor recorded again
    assert (count(workspace, findings), decision_count(workspace)) == (found, decided)


def test_anonymising_a_reader_closes_its_open_findings_and_proposals(workspace: Workspace, ruleset: Ruleset) -> None:
    expelled = reader("svkpk", "SV-1", birth_date="1980-01-01", renewed_at="2026-06-01", debt=0, active_loans=0,
                      personal=COMPLETE)  # fmt: skip
    expulsions = [incident("svkpk", "I-1", "SV-1", "expelled_from_premises", "2026-01-15"),
                  incident("svkpk", "I-2", "SV-1", "expelled_from_premises", "2026-10-02")]  # fmt: skip
    import_lines(workspace, ruleset, [expelled, *expulsions])
    run_all(workspace, ruleset)
    pseudonym = row_of(workspace, "SV-1").pseudonym

    def standing() -> dict[str, tuple[str, str | None]]:
        with workspace.engine.connect() as connection:
            rows = connection.execute(select(findings).where(findings.c.subject == pseudonym))
            return {row.rule: (row.status, row.closed_as_of) for row in rows}

    assert standing() == {"svkpk.exclusion.repeated_expulsion": ("open", None)}  # a proposal for the director
    import_lines(workspace, ruleset, [{**expelled, "erasure_requested_at": "2026-11-22"}, *expulsions])
    run_all(workspace, ruleset, NEXT_DAY)

    assert row_of(workspace, "SV-1").state == "anonymised"
    # no one is left to exclude: the proposal is closed, not left for the director to accept
    assert standing() == {"svkpk.exclusion.repeated_expulsion": ("resolved", NEXT_DAY.isoformat())}


# -- the run as a whole ---------------------------------------------------------------------------------


@pytest.mark.parametrize("full", [False, True], ids=["due", "full"])
def test_a_second_run_at_the_same_as_of_changes_nothing_and_records_nothing_new(
    workspace: Workspace, ruleset: Ruleset, full: bool
) -> None:
    import_file(workspace, ruleset, SAMPLE)
    first = run_all(workspace, ruleset)
    assert sum(sum(r.counts.values()) for r in first) > 100  # the sample calls for plenty
    before = snapshot(workspace.engine, exclude={"runs", *LOG})
    decided = decision_count(workspace)

    second = run_all(workspace, ruleset, full=full)

    assert snapshot(workspace.engine, exclude={"runs", *LOG}) == before  # findings, every reader row
    assert decision_count(workspace) == decided  # no decision logged again (only each run's summary)
    assert all(r.counts == Counter() for r in second), [r.counts for r in second]
    if full:
        with workspace.engine.connect() as connection:
            live = connection.execute(select(func.count()).where(readers.c.state != "anonymised")).scalar_one()
        assert sum(r.reviewed for r in second) == live + count(workspace, camera_recordings)
    else:
        assert sum(r.reviewed for r in second) == 0


def test_a_dry_run_changes_nothing_and_plans_what_the_run_then_does(workspace: Workspace, ruleset: Ruleset) -> None:
    import_file(workspace, ruleset, SAMPLE)
    before = snapshot(workspace.engine, exclude={"runs", "plan_items"})

    dry = run_all(workspace, ruleset, dry_run=True)

    assert snapshot(workspace.engine, exclude={"runs", "plan_items"}) == before
    with workspace.engine.connect() as connection:
        planned = Counter(
            (r.subject, r.rule, r.action, r.outcome)
            for r in connection.execute(select(plan_items).where(plan_items.c.run_id.in_([d.run_id for d in dry])))
        )
        assert all(
            r.dry_run and r.status == "finished" for r in connection.execute(select(runs))
        )  # stored as a dry run
    assert sum(d.planned for d in dry) == sum(planned.values())  # what it prints is what it stores
    assert {action for _, _, action, _ in planned} >= {"anonymise", "purge", "block_services", "registration_expired"}

    done = run_all(workspace, ruleset)

    with workspace.engine.connect() as connection:
        recorded = Counter(
            (r.subject, r.rule, r.action, r.outcome)
            for r in connection.execute(
                select(decisions).where(
                    decisions.c.run_id.in_([d.run_id for d in done]), decisions.c.kind == "decision"
                )
            )
        )
    assert recorded == planned
    assert all(not d.planned for d in run_all(workspace, ruleset, dry_run=True))  # and afterwards, nothing is left


@pytest.mark.parametrize("damage", ["zeros", "another reader's key and data"])
def test_a_reader_whose_data_cannot_be_read_fails_closed_and_the_run_goes_on(
    workspace: Workspace, ruleset: Ruleset, damage: str
) -> None:
    erasing = {"birth_date": "1980-01-01", "renewed_at": "2026-06-01", "debt": 0, "active_loans": 0,
               "erasure_requested_at": "2026-11-15", "personal": COMPLETE}  # fmt: skip
    import_lines(
        workspace, ruleset,
        [reader("svkpk", f"SV-{n}", **erasing) for n in (1, 2, 3)]
        + [reader("svkpk", "SV-4", **{**erasing, "erasure_requested_at": None})],
    )  # fmt: skip
    source = row_of(workspace, "SV-4")
    broken = (b"\x00" * 60, b"\x00" * 200) if damage == "zeros" else (source.wrapped_key, source.sealed)
    with workspace.engine.begin() as connection:
        connection.execute(
            update(readers).where(readers.c.id == "SV-2").values(wrapped_key=broken[0], sealed=broken[1])
        )
    pseudonym = row_of(workspace, "SV-2").pseudonym

    result = run(workspace, ruleset, "svkpk")

    assert result.counts[("anonymise", "applied")] == 2
    assert result.counts[("retain", "error")] == 1
    assert row_of(workspace, "SV-1").state == row_of(workspace, "SV-3").state == "anonymised"
    row = row_of(workspace, "SV-2")
    assert (row.state, row.wrapped_key, row.sealed, row.pseudonym) == ("active", *broken, pseudonym)
    assert row.next_review == NEXT_DAY  # looked at again the next night
    assert decisions_of(workspace, pseudonym) == [("kodex.run", "retain", "error", "2026-11-22")]
    with workspace.engine.connect() as connection:
        decision = json.loads(
            connection.execute(select(decisions.c.entry).where(decisions.c.subject == pseudonym)).scalar_one()
        )
        assert connection.execute(select(runs.c.status)).scalar_one() == "finished"
    assert "could not be read" in decision["details"]["error"] and "SV-2" not in json.dumps(decision)


def test_a_subject_whose_action_fails_is_recorded_as_an_error_and_the_batch_goes_on(
    workspace: Workspace, ruleset: Ruleset, monkeypatch: pytest.MonkeyPatch
) -> None:
    erasing = {"birth_date": "1980-01-01", "renewed_at": "2026-06-01", "debt": 0, "active_loans": 0,
               "erasure_requested_at": "2026-11-15", "personal": COMPLETE}  # fmt: skip
    import_lines(
        workspace, ruleset,
        [reader("svkpk", f"SV-{n}", **erasing) for n in (1, 2, 3)] + [loan("svkpk", "L-2", "SV-2", returned_at="2026-02-01")],
    )  # fmt: skip
    strategy = kodex.retention.strategies.STRATEGIES["anonymise"]
    original = strategy.apply

    def failing(connection: Any, subject: Any, master: Any) -> None:
        original(connection, subject, master)  # the change is made, then the subject fails: it must not stay
        if subject.id == "SV-2":
            raise RuntimeError("disk full")

    monkeypatch.setattr(strategy, "apply", failing)
    pseudonym = row_of(workspace, "SV-2").pseudonym

    result = run(workspace, ruleset, "svkpk")

    assert result.counts[("anonymise", "applied")] == 2 and result.counts[("retain", "error")] == 1
    assert row_of(workspace, "SV-1").state == row_of(workspace, "SV-3").state == "anonymised"
    row = row_of(workspace, "SV-2")
    assert row.state == "active" and row.wrapped_key is not None and row.pseudonym == pseudonym
    with workspace.engine.connect() as connection:
        assert connection.execute(select(loans.c.reader).where(loans.c.id == "L-2")).scalar_one() == "SV-2"
    assert decisions_of(workspace, pseudonym) == [("kodex.run", "retain", "error", "2026-11-22")]


def test_a_subject_whose_review_date_cannot_be_computed_does_not_stop_the_run(
    workspace: Workspace, ruleset: Ruleset
) -> None:
    erasing = {"birth_date": "1980-01-01", "renewed_at": "2026-06-01", "debt": 0, "active_loans": 0,
               "erasure_requested_at": "2026-11-15", "personal": COMPLETE}  # fmt: skip
    held = {**erasing, "legal_hold": {"reason": "trestní řízení", "until": "9999-12-31"}}
    import_lines(
        workspace, ruleset,
        [reader("svkpk", "SV-1", **erasing), reader("svkpk", "SV-2", **held), reader("svkpk", "SV-3", **erasing)],
    )  # fmt: skip

    result = run(workspace, ruleset, "svkpk")

    assert result.counts[("anonymise", "applied")] == 2
    assert row_of(workspace, "SV-1").state == row_of(workspace, "SV-3").state == "anonymised"
    assert row_of(workspace, "SV-2").state == "active"
    with workspace.engine.connect() as connection:
        assert connection.execute(select(runs.c.status)).scalar_one() == "finished"


def test_a_later_run_reviews_only_the_subjects_due_and_full_reviews_everyone(
    workspace: Workspace, ruleset: Ruleset
) -> None:
    import_file(workspace, ruleset, SAMPLE)
    run_all(workspace, ruleset)
    with workspace.engine.connect() as connection:
        live = select(func.count()).where(readers.c.state != "anonymised")
        population = connection.execute(live).scalar_one() + count(workspace, camera_recordings)
        due = (
            connection.execute(live.where(or_due(readers.c.next_review))).scalar_one()
            + connection.execute(select(func.count()).where(or_due(camera_recordings.c.next_review))).scalar_one()
        )

    later = run_all(workspace, ruleset, NEXT_DAY)

    assert sum(r.reviewed for r in later) == due
    assert due < population / 5, (due, population)
    with workspace.engine.connect() as connection:
        population = connection.execute(live).scalar_one() + count(workspace, camera_recordings)
    swept = run_all(workspace, ruleset, NEXT_DAY, full=True)
    assert sum(r.reviewed for r in swept) == population


def or_due(column: Any) -> Any:
    return column.is_(None) | (column <= NEXT_DAY)


def test_no_personal_data_in_the_decision_log(workspace: Workspace, ruleset: Ruleset) -> None:
    people = {
        "ZD-88121": {"first_name": "Bořivoj", "last_name": "Přibyslavský", "address": "Chotěbořská 1221, Ždírec",
                     "id_document": "OP 401122339", "employer": "Pila Doubrava"},
        "KN-88122": {"first_name": "Ludmila", "last_name": "Kratochvílová", "address": "Třída Tomáše Bati 5, Zlín",
                     "id_document": "OP 401122340"},
        "SV-88123": {"first_name": "Vendelín", "last_name": "Šebestián", "address": "Klatovská 313, Plzeň",
                     "id_document": "OP 401122341", "citizenship": "DE"},
    }  # fmt: skip
    guardian = {"last_name": "Šebestiánová", "address": "Klatovská 313, Plzeň", "id_document": "OP 401122342"}
    records: list[dict[str, Any]] = [
        reader("zdirec", "ZD-88121", birth_date="1961-01-01", renewed_at="2019-02-02", debt=0, active_loans=0,
               personal=people["ZD-88121"]),
        reader("kntb", "KN-88122", birth_date="2012-01-01", renewed_at="2026-01-05", debt=10, active_loans=1,
               reminded_loans=1, personal=people["KN-88122"]),
        reader("svkpk", "SV-88123", birth_date="2011-01-01", renewed_at="2025-01-05", debt=0, active_loans=0,
               guardian=guardian, personal=people["SV-88123"], legal_hold={"reason": "spis KRPP-99/2026", "until": None}),
        incident("svkpk", "I-5", "SV-88123", "expelled_from_premises", "2026-02-01"),
        incident("svkpk", "I-6", "SV-88123", "expelled_from_premises", "2026-03-01"),
        loan("zdirec", "L-7", "ZD-88121", returned_at="2019-03-01"),
    ]  # fmt: skip
    import_lines(workspace, ruleset, records)
    pseudonyms = {row_of(workspace, record_id).pseudonym for record_id in people}
    run_all(workspace, ruleset, dry_run=True)
    run_all(workspace, ruleset)

    secrets = [*people, "Šebesti", "KRPP-99", "OP 4011223"]
    secrets += [value for person in people.values() for value in person.values()]
    with workspace.engine.connect() as connection:
        logged = [
            (r.subject, json.loads(r.entry))
            for r in connection.execute(
                select(decisions.c.subject, decisions.c.entry).where(decisions.c.kind == "decision")
            )
        ]
        planned = [r.decision for r in connection.execute(select(plan_items.c.decision))]
        opened = [tuple(r) for r in connection.execute(select(findings))]
    assert len(logged) >= 6 and planned
    assert {subject for subject, _ in logged} <= pseudonyms  # subjects are pseudonyms, one per reader
    assert all(re.fullmatch(r"[0-9a-f]{32}", subject) for subject, _ in logged)
    for text in (
        [json.dumps(d, ensure_ascii=False) for _, d in logged]
        + [json.dumps(d, ensure_ascii=False) for d in planned]
        + [repr(f) for f in opened]
    ):
        assert not [s for s in secrets if s in text], text


def test_runs_are_recorded_with_their_outcome(workspace: Workspace, ruleset: Ruleset) -> None:
    import_file(workspace, ruleset, SAMPLE)
    result = run(workspace, ruleset, "svkpk")
    with workspace.engine.connect() as connection:
        row = connection.execute(select(runs).where(runs.c.id == result.run_id)).one()
        logged = connection.execute(
            select(func.count()).where(decisions.c.run_id == result.run_id, decisions.c.kind == "decision")
        ).scalar_one()
    assert (row.library, row.as_of, row.as_of_day, row.status) == (
        "svkpk",
        "2026-11-22",
        date(2026, 11, 22),
        "finished",
    )
    assert row.summary == result.summary()
    assert logged == sum(result.counts.values())


def test_a_run_with_no_failing_subject_applies_each_batch_in_one_transaction(
    workspace: Workspace, ruleset: Ruleset, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The one-subject-per-transaction path is for a batch that failed; a batch of every kind of action succeeds."""
    import_file(workspace, ruleset, SAMPLE)
    alone: list[str] = []
    monkeypatch.setattr(
        kodex.retention.run._Job, "_apply_alone", lambda self, subject, *rest: alone.append(subject.subject_type)
    )

    results = run_all(workspace, ruleset, batch_size=50)

    applied = Counter(action for r in results for (action, outcome), n in r.counts.items() if outcome == "applied")
    assert {"anonymise", "purge", "registration_expired", "block_services"} <= set(applied)
    assert alone == []


# -- reading a night's due subjects ----------------------------------------------------------------------------------


def _night_job(full: bool = False) -> Due:
    """A job's due-subject queries for SVK PK on 2026-11-23, without a store behind them."""
    return Due("svkpk", date(2026, 11, 23), full, 2000)


def test_a_nights_due_readers_are_read_from_the_review_index_of_live_readers_on_sqlite() -> None:
    """Anonymised readers (never reviewed again) are not in the index: a night no longer reads through them."""
    engine = create_engine("sqlite://")
    metadata.create_all(engine)
    (index,) = [i for i in readers.indexes if i.name == "ix_readers_review"]
    assert str(index.dialect_options["sqlite"]["where"]) == "state != 'anonymised'"
    job = _night_job()
    statements = [select(func.count()).select_from(readers).where(condition) for condition, _ in job.ranges(readers)]
    statements.append(job.next_batch(readers, 0))
    with engine.connect() as connection:
        for statement in statements:  # with its values bound as the job binds them: SQLite plans with parameters
            compiled = statement.compile(engine)
            values = tuple(compiled.params[name] for name in compiled.positiontup or ())
            plan = " ".join(row[-1] for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", values))
            assert plan.count("USING INDEX ix_readers_review") == plan.count("SEARCH readers"), plan
            assert "SCAN readers" not in plan, plan
    engine.dispose()
    for condition, _ in job.ranges(readers):  # written out: a generic plan on PostgreSQL can use the index too
        assert "readers.state != 'anonymised'" in str(condition.compile(dialect=postgresql.dialect()))


@pytest.mark.skipif(not on_postgresql(), reason="statistics are PostgreSQL's: SQLite keeps none unless asked")
def test_a_full_sweep_on_postgresql_vacuums_and_analyses_the_rows_it_rewrote(
    workspace: Workspace, ruleset: Ruleset
) -> None:
    """The old row versions (an anonymised reader's wrapped key among them) go, and the statistics are fresh."""
    import_lines(workspace, ruleset, [LAPSED])

    def maintained() -> Any:
        with workspace.engine.connect() as connection:
            return connection.execute(
                sql_text("SELECT last_vacuum, last_analyze FROM pg_stat_user_tables WHERE relid = 'readers'::regclass")
            ).one()

    before = maintained()
    run(workspace, ruleset, "svkpk", AS_OF, dry_run=True, full=True)
    assert maintained() == before  # a dry run changed nothing
    run(workspace, ruleset, "svkpk", AS_OF, full=True)
    after = maintained()
    assert None not in after and after != before
