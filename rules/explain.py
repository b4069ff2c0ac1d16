"""Plain-words explanation of a subject's outcomes, for a data-protection officer.

For each rule of the subject's library in force on `as_of`: its action, its
citation, and why it fired, was blocked, is not yet due, cannot be decided
(a fact is not recorded) or does not apply — with the values it compared.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

from kodex.rules.evaluator import ConditionResult, Outcome, Status
from kodex.rules.facts import CAMERA_FACTS, READER_FACTS
from kodex.rules.periods import Period

__all__ = ["explain", "human"]


def explain(
    subject_id: str,
    library: str,
    as_of: date | datetime,
    revision: str,
    outcomes: Sequence[Outcome],
    param_cites: Mapping[str, str],
) -> list[str]:
    lines = [f"{subject_id} ({library}) as of {human(as_of)} — policy {revision[:12]}…"]
    for outcome in outcomes:
        rule = outcome.rule.rule
        lines.append(f"  {rule.action:<24} {rule.cite:<34} {_verdict(outcome)}")
        lines.append(f"      {rule.title}")
        for condition in outcome.conditions:
            lines.append(f"      {_mark(condition.holds)} {_condition(condition, param_cites)}")
        for incident in outcome.incidents:
            lines.append(f"        incident {incident.id}: {incident.kind} on {human(incident.at)}")
        if rule.decided_by is not None and outcome.status is Status.FIRES:
            lines.append(f"      a proposal: the {rule.decided_by} decides it ({rule.cite})")
        if outcome.exception is not None:
            grant = outcome.exception
            lines.append(
                f"      suspended by exception {grant.id} ({grant.role}) from {human(grant.from_)} until {human(grant.until)}"
            )
        if outcome.legal_hold:
            until = outcome.legal_hold_until
            lines.append(
                f"      legal hold {'until ' + human(until) if until else 'without an end date'}: data must not be erased"
            )
        if outcome.error:
            lines.append(f"      {outcome.error}")
    return lines


def human(value: Any) -> str:
    if isinstance(value, datetime):
        return f"{value.day} {value:%b %Y %H:%M:%S %z}"
    if isinstance(value, date):
        return f"{value.day} {value:%b %Y}"
    if isinstance(value, (list, tuple)):
        return ", ".join(human(v) for v in value) if value else "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return "not recorded"
    return str(value)


def _verdict(outcome: Outcome) -> str:
    if outcome.status is Status.FIRES:
        return "APPLIES"
    if outcome.status is Status.BLOCKED:
        return "RETAINED (blocked)"
    if outcome.status is Status.ERROR:
        return "ERROR (not acted on)"
    if any(c.holds is None for c in outcome.conditions):
        return "CANNOT DECIDE (a fact is not recorded; nothing is done)"
    pending = [c for c in outcome.conditions if c.holds is False]
    if pending and all(c.deadline is not None for c in pending):
        return f"NOT YET (due after {human(max(c.deadline for c in pending))})"
    return "does not apply"


_PATTERN_VALUES = {
    "incidents": "matching incidents",
    "at_least": "needed",
    "window_from": "counted from",
}


def _mark(holds: bool | None) -> str:
    return {True: "✓", False: "✗", None: "?"}[holds]


def _condition(condition: ConditionResult, param_cites: Mapping[str, str]) -> str:
    parts = []
    for name, value in condition.values.items():
        label = READER_FACTS.get(name) or CAMERA_FACTS.get(name) or _PATTERN_VALUES.get(name)
        if label is not None:
            parts.append(f"{label}: {human(value)}")
        else:
            shown = str(value) if isinstance(value, Period) else human(value)
            parts.append(f"{name} = {shown} ({param_cites.get(name, 'policy')})")
    text = condition.text
    if condition.deadline is not None:
        text += f" — due after {human(condition.deadline)}"
    return f"{text}\n          " + "; ".join(parts) if parts else text
