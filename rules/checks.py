"""Semantic checks of a policy that the structural models cannot express.

Each problem is returned as (location, message); rules.loading turns the
location into file:line:col. Checked: rule ids belong to their library and do
not overlap in time; actions, effects and subjects agree with the action
registry; exception roles are ones the regulation empowers; parameters parse,
have a value in force from the rule's first day and do not shadow facts;
conditions name only known facts and parameters; examples are valid records
and expect the rule's action, `nothing` or `retain`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import date
from typing import Any

from pydantic import ValidationError

from kodex.errors import InvalidExpression, InvalidPeriod
from kodex.rules.actions import ACTIONS, RETAIN
from kodex.rules.expressions import parse
from kodex.rules.facts import CAMERA_FACTS, READER_FACTS
from kodex.rules.periods import Period
from kodex.rules.policy import DatedValue, Example, Library, Policy, Rule
from kodex.rules.records import SUBJECT

__all__ = ["NOTHING", "check_policy", "example_record"]

Problem = tuple[tuple[str | int, ...], str]
NOTHING = "nothing"
_SUBJECT_FACTS = {"reader": READER_FACTS, "camera_recording": CAMERA_FACTS}


def check_policy(policy: Policy) -> list[Problem]:
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for li, library in enumerate(policy.libraries):
        at: tuple[str | int, ...] = ("libraries", li)
        if library.id in seen:
            problems.append(
                ((*at, "id"), f"duplicate library id {library.id!r} (first at libraries.{seen[library.id]})")
            )
        seen.setdefault(library.id, li)
        problems.extend(_check_library(library, at))
    return problems


def example_record(library: str, rule: Rule, example: Example) -> str:
    """The example's subject as a record-contract JSON line (base fields filled in)."""
    if example.reader is not None:
        base: dict[str, Any] = {"type": "reader", "library": library, "id": "example", "kind": "person"}
        fields = example.reader
    else:
        base = {"type": "camera_recording", "library": library, "id": "example", "camera": "example", "location": ""}
        fields = example.recording or {}
    return json.dumps({**base, **fields}, default=lambda v: v.isoformat(), ensure_ascii=False)


def _check_library(library: Library, at: tuple[str | int, ...]) -> Iterator[Problem]:
    for day, dated in library.exceptions.max_period.items():
        where = (*at, "exceptions", "max_period", str(day), "value")
        if not isinstance(dated.value, str):
            yield (where, "write the longest an exception may last as a period, e.g. '1 year'")
            continue
        try:
            Period.parse(dated.value)
        except InvalidPeriod as error:
            yield (where, str(error))
    params = dict(library.params)
    for name, values in library.params.items():
        yield from _check_param(name, values, (*at, "params", name))
    for ri, rule in enumerate(library.rules):
        for name, values in rule.params.items():
            where = (*at, "rules", ri, "params", name)
            if name in params:
                yield (where, f"parameter {name!r} is already defined in this library; names are unique per library")
            params[name] = values
            yield from _check_param(name, values, where)
    for key, text in library.inventory.mandatory_when.items():
        yield from _check_expression(
            text, frozenset(READER_FACTS) | frozenset(params), (*at, "inventory", "mandatory_when", key)
        )
    versions: dict[str, list[Rule]] = {}
    for ri, rule in enumerate(library.rules):
        where = (*at, "rules", ri)
        for other in versions.get(rule.id, []):
            if _overlap(rule, other):
                yield ((*where, "id"), f"duplicate rule id {rule.id!r}: its effective period overlaps another version")
        versions.setdefault(rule.id, []).append(rule)
        yield from _check_rule(library, rule, params, where)


def _check_param(name: str, values: Mapping[date, DatedValue], where: tuple[str | int, ...]) -> Iterator[Problem]:
    if name in READER_FACTS or name in CAMERA_FACTS:
        yield (where, f"parameter {name!r} has the name of a fact")
    for day, dated in values.items():
        if isinstance(dated.value, str):
            try:
                Period.parse(dated.value)
            except InvalidPeriod as error:
                yield ((*where, str(day), "value"), str(error))


def _check_rule(
    library: Library, rule: Rule, params: Mapping[str, Mapping[date, DatedValue]], where: tuple[str | int, ...]
) -> Iterator[Problem]:
    if not rule.id.startswith(f"{library.id}."):
        yield ((*where, "id"), f"rule id must start with the library id: '{library.id}.'")
    action = ACTIONS.get(rule.action)
    if action is None:
        yield ((*where, "action"), f"unknown action {rule.action!r}; known: {', '.join(sorted(ACTIONS))}")
    else:
        if rule.subject not in action.subjects:
            yield (
                (*where, "subject"),
                f"action {rule.action!r} acts on {', '.join(sorted(action.subjects))}, not {rule.subject}",
            )
        if rule.effect not in action.effects:
            allowed = ", ".join(sorted(e.value for e in action.effects))
            yield ((*where, "effect"), f"action {rule.action!r} may only be: {allowed}")
    yield from _check_exception_by(library, rule, (*where, "exception_by"))
    known = frozenset(_SUBJECT_FACTS[rule.subject]) | frozenset(params)
    for ci, text in enumerate(rule.conditions):
        yield from _check_expression(text, known, (*where, "when", ci))
        yield from _check_param_in_force(text, known, params, rule, (*where, "when", ci))
    for key, text in rule.derive.items():
        yield from _check_expression(text, known, (*where, "derive", key))
    if rule.incidents is not None and rule.incidents.within is not None:
        try:
            Period.parse(rule.incidents.within)
        except InvalidPeriod as error:
            yield ((*where, "incidents", "within"), str(error))
    for ei, example in enumerate(rule.examples):
        yield from _check_example(library, rule, example, (*where, "examples", ei))


def _check_exception_by(library: Library, rule: Rule, where: tuple[str | int, ...]) -> Iterator[Problem]:
    if rule.subject == "camera_recording" and rule.exception_by:
        yield (where, "a camera recording is kept longer only under a legal hold, never by an exception: write []")
    for role in rule.exception_by:
        if role not in library.exceptions.roles:
            yield (where, f"role {role!r} is not empowered by the regulation ({library.exceptions.cite})")


def _check_expression(text: str, known: frozenset[str], where: tuple[str | int, ...]) -> Iterator[Problem]:
    try:
        parse(text, known)
    except (InvalidExpression, InvalidPeriod) as error:
        column = getattr(error, "column", 0)
        yield (where, f"{error} (at character {column + 1} of the condition)")


def _check_param_in_force(
    text: str,
    known: frozenset[str],
    params: Mapping[str, Mapping[date, DatedValue]],
    rule: Rule,
    where: tuple[str | int, ...],
) -> Iterator[Problem]:
    try:
        names = parse(text, known)[1]
    except (InvalidExpression, InvalidPeriod):
        return
    for name in names:
        if name in params and min(params[name]) > rule.effective_from:
            yield (
                where,
                f"parameter {name!r} has no value in force on {rule.effective_from} (the rule's effective_from)",
            )


def _check_example(library: Library, rule: Rule, example: Example, where: tuple[str | int, ...]) -> Iterator[Problem]:
    if example.expect not in {rule.action, NOTHING, RETAIN}:
        yield ((*where, "expect"), f"expect {rule.action!r}, {NOTHING!r} or {RETAIN!r}")
    if (example.reader is None) != (rule.subject != "reader"):
        yield (
            where,
            f"the rule's subject is {rule.subject}; give the example a {'reader' if rule.subject == 'reader' else 'recording'}",
        )
    try:
        SUBJECT.validate_json(example_record(library.id, rule, example))
    except ValidationError as error:
        for detail in error.errors(include_input=False, include_url=False):
            field = ".".join(str(p) for p in detail["loc"][1:])
            yield ((*where, "reader" if example.reader is not None else "recording"), f"{field}: {detail['msg']}")
    if example.incidents and rule.incidents is None:
        yield ((*where, "incidents"), "incidents in an example count only for an incident rule")
    for gi, grant in enumerate(example.exceptions):
        if grant.role not in rule.exception_by:
            yield (
                (*where, "exceptions", gi, "role"),
                f"rule {rule.id} allows exceptions only by {rule.exception_by or 'nobody'}",
            )


def _overlap(a: Rule, b: Rule) -> bool:
    a_end, b_end = a.effective_to or date.max, b.effective_to or date.max
    return a.effective_from <= b_end and b.effective_from <= a_end
