"""The native evaluator: decisions, exceptions, legal holds, fail-closed behaviour and purity."""

from __future__ import annotations

import ast
import json
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest

from kodex.rules.decision import build_decision
from kodex.rules.evaluator import Outcome, Status, evaluate_subject
from kodex.rules.loading import load_policy
from kodex.rules.records import RECORD, CameraRecording, ExceptionGrant, Reader
from kodex.rules.ruleset import Ruleset
from tests.support import POLICY

AS_OF = date(2026, 11, 22)


def reader(library: str = "svkpk", **fields: Any) -> Reader:
    record = RECORD.validate_json(
        json.dumps({"type": "reader", "library": library, "id": "R-1", "kind": "person", **fields})
    )
    assert isinstance(record, Reader)
    return record


def grant(rule: str, role: str = "director", subject: str = "R-1", **dates: str) -> ExceptionGrant:
    fields = {"from": dates.get("start", "2026-11-01"), "until": dates.get("until", "2026-12-31")}
    return ExceptionGrant.model_validate_json(
        json.dumps({"type": "exception", "library": rule.split(".", maxsplit=1)[0], "id": "E-1", "subject": subject,
                    "rule": rule, "role": role, "granted_by": "Ing. Ředitelová", "reason": "soudní spor", **fields})
    )  # fmt: skip


def outcome(ruleset: Ruleset, subject: Reader | CameraRecording, rule: str, as_of: date | datetime = AS_OF,
            grants: list[ExceptionGrant] | None = None) -> Outcome:  # fmt: skip
    library = ruleset.library(subject.library)
    day = as_of.date() if isinstance(as_of, datetime) else as_of
    outcomes = evaluate_subject(library.at(day), subject, as_of, grants or [])
    return next(o for o in outcomes if o.rule.id == rule)


EXPIRED = {"valid_until": "2024-11-21", "debt": 0, "active_loans": 0}
RETENTION = "svkpk.retention.after_settlement"


def test_svkpk_reader_anonymised_day_after_24_months_past_card_expiry(ruleset: Ruleset) -> None:
    assert outcome(ruleset, reader(**EXPIRED), RETENTION).status is Status.FIRES
    assert outcome(ruleset, reader(**EXPIRED), RETENTION, date(2026, 11, 21)).status is Status.NOT_APPLICABLE


def test_unknown_debt_never_anonymises_fail_closed(ruleset: Ruleset) -> None:
    unknown_debt = reader(valid_until="2020-01-01", active_loans=0)
    result = outcome(ruleset, unknown_debt, RETENTION)
    assert result.status is Status.NOT_APPLICABLE
    assert result.conditions[0].holds is None


def test_active_exception_turns_the_decision_into_retain_naming_the_exception(ruleset: Ruleset) -> None:
    result = outcome(ruleset, reader(**EXPIRED), RETENTION, grants=[grant(RETENTION)])
    assert result.status is Status.BLOCKED
    decision = build_decision(result, reader(**EXPIRED), AS_OF, ruleset.revision)
    assert decision["action"] == "retain"
    assert decision["blocked_action"] == "anonymise"
    assert decision["exception"] == {"id": "E-1", "role": "director", "from": "2026-11-01", "until": "2026-12-31"}


def test_exception_no_longer_applies_the_day_after_it_ends(ruleset: Ruleset) -> None:
    ended = grant(RETENTION, until="2026-11-21")
    assert outcome(ruleset, reader(**EXPIRED), RETENTION, grants=[ended]).status is Status.FIRES


def test_exception_applies_on_its_last_day(ruleset: Ruleset) -> None:
    last_day = grant(RETENTION, until="2026-11-22")
    assert outcome(ruleset, reader(**EXPIRED), RETENTION, grants=[last_day]).status is Status.BLOCKED


def test_exception_for_another_reader_or_rule_does_not_apply(ruleset: Ruleset) -> None:
    other_reader = grant(RETENTION, subject="R-2")
    other_rule = grant("svkpk.block.reminded_ill_loans")
    result = outcome(ruleset, reader(**EXPIRED), RETENTION, grants=[other_reader, other_rule])
    assert result.status is Status.FIRES


def test_exception_does_not_hold_back_a_rule_that_allows_none(ruleset: Ruleset) -> None:
    requested = reader(erasure_requested_at="2026-11-20", debt=0, active_loans=0)
    result = outcome(
        ruleset,
        requested,
        "svkpk.erasure.cancellation_on_request",
        grants=[grant("svkpk.erasure.cancellation_on_request")],
    )
    assert result.status is Status.FIRES


def test_legal_hold_blocks_anonymisation_and_is_named_in_the_decision(ruleset: Ruleset) -> None:
    held = reader(**EXPIRED, legal_hold={"reason": "předáno Policii ČR", "until": "2027-03-31"})
    result = outcome(ruleset, held, RETENTION)
    assert result.status is Status.BLOCKED
    decision = build_decision(result, held, AS_OF, ruleset.revision)
    assert decision["legal_hold"] == {"until": "2027-03-31"}
    assert "Policii" not in json.dumps(decision, ensure_ascii=False)


def test_legal_hold_that_ended_no_longer_blocks(ruleset: Ruleset) -> None:
    ended = reader(**EXPIRED, legal_hold={"reason": "předáno Policii ČR", "until": "2026-11-21"})
    assert outcome(ruleset, ended, RETENTION).status is Status.FIRES


def test_legal_hold_does_not_block_a_non_destructive_action(ruleset: Ruleset) -> None:
    held = reader(reminded_ill_loans=1, legal_hold={"reason": "x", "until": None})
    assert outcome(ruleset, held, "svkpk.block.reminded_ill_loans").status is Status.FIRES


def test_svkpk_recording_purged_one_second_after_seven_days(ruleset: Ruleset) -> None:
    recording = RECORD.validate_json(json.dumps({
        "type": "camera_recording", "library": "svkpk", "id": "cam-1", "camera": "entrance", "location": "/x",
        "start": "2026-11-10T10:00:00+01:00", "end": "2026-11-10T11:00:00+01:00"}))  # fmt: skip
    assert isinstance(recording, CameraRecording)
    rule = "svkpk.camera.purge_after_7_days"
    assert (
        outcome(ruleset, recording, rule, datetime.fromisoformat("2026-11-17T11:00:00+01:00")).status
        is Status.NOT_APPLICABLE
    )
    assert outcome(ruleset, recording, rule, datetime.fromisoformat("2026-11-17T11:00:01+01:00")).status is Status.FIRES
    assert outcome(ruleset, recording, rule, datetime.fromisoformat("2026-11-17T10:00:01Z")).status is Status.FIRES


def test_derived_registration_end_is_marked_as_derived_in_the_reasons(ruleset: Ruleset) -> None:
    renewed = reader(library="zdirec", renewed_at="2025-03-10")
    result = outcome(ruleset, renewed, "zdirec.registration.calendar_year", date(2026, 1, 1))
    values = result.conditions[0].values
    assert values["valid_until"] == date(2025, 12, 31)
    assert values["valid_until_derived"] is True


def test_decision_carries_the_contract_fields(ruleset: Ruleset) -> None:
    subject = reader(**EXPIRED)
    decision = build_decision(outcome(ruleset, subject, RETENTION), subject, AS_OF, ruleset.revision)
    assert set(decision) >= {
        "library",
        "subject_type",
        "subject",
        "rule",
        "action",
        "cite",
        "as_of",
        "policy_revision",
        "reasons",
    }
    assert decision["cite"] == "čl. 9 odst. 2; čl. 10 odst. 7"
    assert decision["policy_revision"] == ruleset.revision
    deadline = decision["reasons"][1]
    assert deadline["holds"] is True
    assert deadline["due_after"] == "2026-11-21"
    assert deadline["values"]["archive_period"] == "24 months"


def test_error_while_evaluating_one_rule_fails_it_closed_and_decides_the_others() -> None:
    ruleset = Ruleset(load_policy(POLICY))  # its own copy: this test breaks a rule on purpose
    library = ruleset.library("svkpk")
    snapshot = library.at(AS_OF)
    retention = next(r for r in library.rules if r.id == RETENTION)

    def explode(env: Any) -> Any:
        raise ValueError(f"bad value for {env.get('citizenship')} Jana Malá")

    object.__setattr__(retention, "fires", explode)
    snapshot.fires["reader"] = explode  # type: ignore[index]
    subject = reader(**EXPIRED, personal={"last_name": "Malá", "first_name": "Jana"})
    outcomes = {o.rule.id: o for o in evaluate_subject(snapshot, subject, AS_OF)}
    assert outcomes[RETENTION].status is Status.ERROR
    assert outcomes["svkpk.registration.one_year"].status is Status.FIRES
    decision = build_decision(outcomes[RETENTION], subject, AS_OF, ruleset.revision)
    assert decision["action"] == "retain"
    assert "Malá" not in decision["error"] and "Jana" not in decision["error"]


def test_same_input_gives_the_same_decisions(ruleset: Ruleset) -> None:
    subject = reader(**EXPIRED, birth_date="2012-01-01", guardian={"last_name": "Malá"})
    library = ruleset.library("svkpk").at(AS_OF)
    first = [build_decision(o, subject, AS_OF, ruleset.revision) for o in evaluate_subject(library, subject, AS_OF)]
    second = [build_decision(o, subject, AS_OF, ruleset.revision) for o in evaluate_subject(library, subject, AS_OF)]
    assert first == second


FORBIDDEN_CALLS = {"now", "today", "utcnow", "open", "connect", "getenv", "urlopen", "system"}
FORBIDDEN_MODULES = {"time", "os", "socket", "sqlite3", "subprocess", "urllib", "requests", "random", "sqlalchemy"}
PURE = [p for p in (Path(__file__).resolve().parents[2] / "rules").glob("*.py") if p.name != "loading.py"]


@pytest.mark.parametrize("module", PURE, ids=[p.name for p in PURE])
def test_rules_module_reads_no_clock_file_or_database(module: Path) -> None:
    tree = ast.parse(module.read_text(encoding="utf-8"))
    imported = {
        alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    }
    imported |= {(node.module or "").split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    called = {
        node.func.attr for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
    }
    called |= {
        node.func.id for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    }
    assert not imported & FORBIDDEN_MODULES
    assert not called & FORBIDDEN_CALLS
