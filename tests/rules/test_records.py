"""The record contract: JSON Lines, strictly typed, checked against the policy.

Every rejected line is reported with its number and field; the other lines are
still read; no message repeats the rejected value.
"""

from __future__ import annotations

import json
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from kodex.rules.loading import load_policy
from kodex.rules.ruleset import Ruleset
from kodex.rules.validation import RecordProblem, RecordSet, read_records

POLICY_PATH = Path(__file__).resolve().parents[2] / "policies.yaml"
AS_OF = date(2026, 11, 22)


# ---------------------------------------------------------------- helpers


@cache
def real_ruleset() -> Ruleset:
    return Ruleset(load_policy(POLICY_PATH))


def reader(**fields: Any) -> str:
    """A valid svkpk reader line; keyword arguments override or add fields."""
    base: dict[str, Any] = {"type": "reader", "library": "svkpk", "id": "R-1", "kind": "person"}
    return json.dumps({**base, **fields}, ensure_ascii=False)


def exception(**fields: Any) -> str:
    """A valid exception line: zdirec's head of the library suspends retention for R-1."""
    base: dict[str, Any] = {
        "type": "exception",
        "library": "zdirec",
        "id": "E-1",
        "subject": "R-1",
        "rule": "zdirec.retention.five_years_after_registration",
        "role": "director",
        "granted_by": "head of the library",
        "reason": "pending court case",
        "from": "2026-01-01",
        "until": "2026-06-30",
    }
    return json.dumps({**base, **fields}, ensure_ascii=False)


def read(*lines: str) -> tuple[RecordSet, list[RecordProblem]]:
    return read_records(list(lines), real_ruleset(), AS_OF)


def where(problems: list[RecordProblem]) -> list[tuple[int, str]]:
    return [(p.line, p.field) for p in problems]


DESIGN_READER = {
    "type": "reader",
    "library": "svkpk",
    "id": "R-1001",
    "kind": "person",
    "category": "adult",
    "birth_date": "2011-05-02",
    "renewed_at": "2024-03-01",
    "valid_until": "2025-02-28",
    "last_activity_at": "2025-01-10",
    "one_time": False,
    "debt": 0,
    "obligations_settled_at": None,
    "active_loans": 0,
    "reminded_loans": 0,
    "reminded_ill_loans": 0,
    "guardian": {"first_name": "Eva", "last_name": "Malá", "address": "Plzeň", "id_document": "OP 1"},
    "legal_hold": None,
    "erasure_requested_at": None,
    "history_erasure_requested_at": None,
    "personal": {
        "first_name": "Jana",
        "last_name": "Malá",
        "address": "Plzeň",
        "email": "jana@example.org",
        "phone": "+420 600 000 000",
        "id_document": "OP 2",
    },
}


# ---------------------------------------------------------------- valid records


def test_every_record_type_of_the_contract_is_read():
    records, problems = read(
        json.dumps(DESIGN_READER, ensure_ascii=False),
        '{"type":"loan","library":"svkpk","id":"L-1","reader":"R-1001","item":"2590012345","borrowed_at":"2026-10-01","due_at":"2026-11-01","returned_at":null,"ill":false}',
        '{"type":"camera_recording","library":"svkpk","id":"cam1-20261110T10","camera":"entrance","start":"2026-11-10T10:00:00+01:00","end":"2026-11-10T11:00:00+01:00","location":"/var/cctv/1","legal_hold":null}',
        '{"type":"incident","library":"kntb","id":"I-7","reader":"R-2","kind":"card_lost","at":"2026-03-02"}',
        exception(),
    )
    assert problems == []
    assert [r.id for r in records.readers] == ["R-1001"]
    assert [r.id for r in records.loans] == ["L-1"]
    assert [r.id for r in records.recordings] == ["cam1-20261110T10"]
    assert [r.id for r in records.incidents] == ["I-7"]
    assert [g.id for g in records.grants_for("zdirec", "R-1")] == ["E-1"]


# ---------------------------------------------------------------- structure


def test_unknown_field_is_rejected_with_its_line_and_name():
    records, problems = read(reader(id="R-1"), reader(id="R-2", colour="red"))
    assert where(problems) == [(2, "colour")]
    assert problems[0].message == "unknown field"
    assert [r.id for r in records.readers] == ["R-1"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        pytest.param("debt", "10", id="debt as a string"),
        pytest.param("active_loans", 1.5, id="active_loans as a fraction"),
        pytest.param("active_loans", -1, id="active_loans negative"),
        pytest.param("one_time", 1, id="one_time as a number"),
        pytest.param("one_time", "true", id="one_time as a string"),
        pytest.param("birth_date", 20110502, id="birth_date as a number"),
    ],
)
def test_field_of_the_wrong_type_is_rejected_with_its_line_and_name(field: str, value: Any):
    records, problems = read(reader(**{field: value}))
    assert where(problems) == [(1, field)]
    assert records.readers == []


def test_impossible_date_is_rejected():
    records, problems = read(reader(birth_date="2023-02-30"))
    assert where(problems) == [(1, "birth_date")]
    assert records.readers == []


def test_unknown_record_type_is_rejected_at_field_type():
    _, problems = read(reader(), '{"type":"visitor","library":"svkpk","id":"V-1"}')
    assert where(problems) == [(2, "type")]
    assert problems[0].message.startswith("type must be one of: reader, loan")


def test_invalid_json_is_rejected_with_its_line():
    _, problems = read(reader(), reader(id="R-2"), '{"type":"reader",')
    assert where(problems) == [(3, "")]
    assert problems[0].message.startswith("Invalid JSON")


def test_blank_lines_are_skipped_but_counted():
    records, problems = read("", reader(id="R-1"), "   ", reader(id="R-2", colour="red"))
    assert where(problems) == [(4, "colour")]
    assert [r.id for r in records.readers] == ["R-1"]


def test_valid_line_after_an_invalid_one_is_still_read():
    records, problems = read('{"type":"reader",', reader(id="R-2", colour="red"), reader(id="R-3"))
    assert [p.line for p in problems] == [1, 2]
    assert [r.id for r in records.readers] == ["R-3"]


# ---------------------------------------------------------------- against the policy and as_of


def test_birth_date_after_as_of_is_rejected():
    records, problems = read(reader(birth_date="2026-11-23"))
    assert where(problems) == [(1, "birth_date")]
    assert problems[0].message == "birth date is after as_of"
    assert records.readers == []


def test_birth_on_as_of_is_accepted():
    records, problems = read(reader(birth_date="2026-11-22"))
    assert problems == []
    assert records.readers[0].birth_date == date(2026, 11, 22)


def test_unknown_library_is_rejected():
    records, problems = read(reader(library="nowhere"))
    assert where(problems) == [(1, "library")]
    assert problems[0].message == "unknown library; the policy has: kntb, svkpk, zdirec"
    assert records.readers == []


def test_duplicate_id_is_rejected_on_the_second_line_naming_the_first():
    records, problems = read(reader(id="R-1"), reader(id="R-2"), reader(id="R-1"))
    assert where(problems) == [(3, "id")]
    assert problems[0].message.endswith("first on line 1")
    assert [r.id for r in records.readers] == ["R-1", "R-2"]


def test_same_id_in_another_library_or_of_another_type_is_not_a_duplicate():
    records, problems = read(
        reader(id="X-1"),
        reader(id="X-1", library="zdirec"),
        '{"type":"incident","library":"svkpk","id":"X-1","reader":"X-1","kind":"card_lost","at":"2026-03-02"}',
    )
    assert problems == []
    assert [(r.library, r.id) for r in records.readers] == [("svkpk", "X-1"), ("zdirec", "X-1")]
    assert [i.id for i in records.incidents] == ["X-1"]


def test_registration_ending_before_it_starts_is_rejected():
    _, problems = read(reader(renewed_at="2025-03-01", valid_until="2025-02-28"))
    assert where(problems) == [(1, "valid_until")]


# ---------------------------------------------------------------- exceptions


def test_director_exception_at_zdirec_is_accepted():
    records, problems = read(exception())
    assert problems == []
    [grant] = records.grants_for("zdirec", "R-1")
    assert (grant.rule, grant.role, grant.from_, grant.until) == (
        "zdirec.retention.five_years_after_registration",
        "director",
        date(2026, 1, 1),
        date(2026, 6, 30),
    )


def test_exception_on_a_rule_that_allows_none_is_rejected_at_field_rule():
    records, problems = read(reader(), exception(rule="zdirec.erasure.on_request"))
    assert where(problems) == [(2, "rule")]
    assert problems[0].message == "rule zdirec.erasure.on_request allows no exceptions"
    assert records.exceptions == []


def test_exception_on_a_rule_the_library_does_not_have_is_rejected_at_field_rule():
    _, problems = read(exception(rule="svkpk.retention.after_settlement"))
    assert where(problems) == [(1, "rule")]


def test_exception_from_a_role_zdirec_does_not_empower_is_rejected_at_field_role():
    records, problems = read(exception(role="authorised_employee"))
    assert where(problems) == [(1, "role")]
    assert "empowered: director" in problems[0].message
    assert records.exceptions == []


def test_authorised_employee_exception_is_accepted_where_the_regulation_empowers_one():
    records, problems = read(
        exception(library="svkpk", rule="svkpk.retention.after_settlement", role="authorised_employee")
    )
    assert problems == []
    assert [g.role for g in records.exceptions] == ["authorised_employee"]


def test_exception_ending_before_it_starts_is_rejected_at_field_until():
    records, problems = read(exception(**{"from": "2026-06-30", "until": "2026-01-01"}))
    assert where(problems) == [(1, "until")]
    assert problems[0].message == "exception ends before it starts"
    assert records.exceptions == []


def test_one_day_exception_is_accepted():
    _, problems = read(exception(**{"from": "2026-06-30", "until": "2026-06-30"}))
    assert problems == []


# ---------------------------------------------------------------- privacy


NAME = "Jan Novák"
EMAIL = "jan.novak@example.org"
CARD = "26000123456789"
PHONE = 12345


def test_problem_messages_never_repeat_the_rejected_personal_data():
    lines = [
        reader(
            debt=NAME,
            phone=PHONE,
            nickname=NAME,
            active_loans=EMAIL,
            one_time=CARD,
            birth_date=EMAIL,
            kind=NAME,
            category=int(CARD),
            personal={"email": PHONE, "last_name": [NAME], "phone": int(CARD)},
            guardian=NAME,
            legal_hold={"reason": NAME, "until": EMAIL},
        ),
        reader(id="R-2", library=NAME),
        json.dumps({"type": NAME, "library": "svkpk", "id": CARD}, ensure_ascii=False),
        exception(role=NAME, granted_by=NAME, reason=EMAIL, rule=CARD),
        '{"type":"reader","library":"svkpk","id":"R-3","personal":{"last_name":"Jan Novák", "email": jan.novak@example.org}}',
    ]
    _, problems = read(*lines)
    rejected = {(p.line, p.field) for p in problems}
    assert {
        (1, "debt"),
        (1, "phone"),
        (1, "nickname"),
        (1, "active_loans"),
        (1, "one_time"),
        (1, "birth_date"),
        (1, "kind"),
        (1, "category"),
        (1, "personal.email"),
        (1, "personal.last_name"),
        (1, "personal.phone"),
        (1, "guardian"),
        (1, "legal_hold.until"),
        (2, "library"),
        (3, "type"),
        (4, "rule"),
        (5, ""),
    } <= rejected
    for problem in problems:
        shown = str(problem)
        for secret in ("Novák", "novak", CARD, str(PHONE)):
            assert secret not in shown, f"{secret!r} leaked into {shown!r}"


def test_unknown_personal_key_is_reported_without_the_key_itself() -> None:
    _, problems = read(reader(personal={"Jan Novák": "x"}))
    assert [(p.line, p.field) for p in problems] == [(1, "personal")]
    assert "Novák" not in str(problems[0])


# ---------------------------------------------------------------- categories (issue 16)


@pytest.mark.parametrize(
    ("library", "category", "accepted"),
    [("kntb", "external", True), ("kntb", "adult", False), ("svkpk", "student", True), ("svkpk", "internal", False)],
)
def test_a_reader_category_must_be_one_the_librarys_policy_lists(library: str, category: str, accepted: bool):
    records, problems = read(reader(library=library, category=category))

    if accepted:
        assert (len(records.readers), problems) == (1, [])
        return
    allowed = {"kntb": "internal, external", "svkpk": "adult, child, senior, student"}[library]
    assert [str(p) for p in problems] == [f"line 1: category: not a category of this library ({allowed})"]


def test_a_category_holding_free_text_about_a_person_is_refused_without_repeating_it():
    _, problems = read(reader(category="Jana Nováková, nemocná"))

    assert [(p.line, p.field) for p in problems] == [(1, "category")]
    assert "Nováková" not in str(problems[0])
