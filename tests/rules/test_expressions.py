"""Conditions are three-valued: an unknown operand never makes a rule fire (fail closed)."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from kodex.errors import InvalidExpression
from kodex.rules.codegen import compile_rule
from kodex.rules.expressions import compile_condition, parse

KNOWN = frozenset({"a", "b", "day", "states", "period"})


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        ("a > 1", {"a": 2}, True),
        ("a > 1", {"a": None}, None),
        ("not a", {"a": None}, None),
        ("not a", {"a": []}, True),
        ("a and b", {"a": False, "b": None}, False),
        ("a and b", {"a": True, "b": None}, None),
        ("a or b", {"a": True, "b": None}, True),
        ("a or b", {"a": False, "b": None}, None),
        ("1 < a < 3", {"a": 2}, True),
        ("1 < a < 3", {"a": 3}, False),
        ("1 < a < 3", {"a": None}, None),
        ("a in states", {"a": "NO", "states": ("NO", "IS")}, True),
        ("a not in states", {"a": None, "states": ("NO",)}, None),
        ("day + 1 month == b", {"day": date(2023, 1, 31), "b": date(2023, 2, 28)}, True),
        ("day - 1 day == b", {"day": date(2026, 1, 1), "b": date(2025, 12, 31)}, True),
        ("max(a, b) == 3", {"a": None, "b": 3}, True),
        ("max(a, b) == 3", {"a": None, "b": None}, None),
        ("end_of_year(day) == b", {"day": date(2024, 2, 29), "b": date(2024, 12, 31)}, True),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_condition_value_with_unknowns(text: str, env: dict[str, Any], expected: bool | None) -> None:
    condition = compile_condition(text, KNOWN)
    assert condition.holds(env) is expected
    fires = compile_rule([parse(text, KNOWN)[0]])
    assert fires(env) is (expected is True)


def test_deadline_of_an_as_of_comparison_is_the_last_day_not_due() -> None:
    condition = compile_condition("as_of > day + 5 years", KNOWN | {"as_of"})
    assert condition.deadline is not None
    assert condition.deadline({"day": date(2020, 12, 31)}) == date(2025, 12, 31)


@pytest.mark.parametrize(
    "text",
    ["a.debt > 0", "(lambda: 1)()", "open('x')", "a[0]", "a if b else 1", "__import__('os')", "a ** 2", "unknown > 1"],
)
def test_anything_outside_the_grammar_is_refused(text: str) -> None:
    with pytest.raises(InvalidExpression):
        parse(text, KNOWN)
