"""The one place that builds a decision (its fields: the README, "Decisions").

A decision carries its own evidence: rule id, article, the values each
condition compared, `as_of` and the policy revision. Values are converted to
JSON-ready form; exception and legal-hold details are limited to what an
auditor needs (ids, roles, dates), never the free-text reason or a name.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from kodex.rules.actions import RETAIN
from kodex.rules.evaluator import Outcome, Status, subject_type_of
from kodex.rules.records import CameraRecording, Reader

__all__ = ["build_decision", "calls_for_something", "json_value"]


def build_decision(
    outcome: Outcome, subject: Reader | CameraRecording, as_of: date | datetime, revision: str
) -> dict[str, Any]:
    rule = outcome.rule.rule
    decision: dict[str, Any] = {
        "library": outcome.rule.library,
        "subject_type": subject_type_of(subject),
        "subject": subject.id,
        "rule": rule.id,
        "action": rule.action if outcome.status is Status.FIRES else RETAIN,
        "effect": rule.effect.value,
        "cite": rule.cite,
        "as_of": as_of.isoformat(),
        "policy_revision": revision,
        "reasons": [
            {
                "condition": c.text,
                "holds": c.holds,
                "values": {name: json_value(value) for name, value in c.values.items()},
                **({"due_after": json_value(c.deadline)} if c.deadline is not None else {}),
            }
            for c in outcome.conditions
        ],
    }
    if rule.incidents is not None:  # the incidents behind it: ids, kinds and days only
        decision["incidents"] = [
            {"id": incident.id, "kind": incident.kind, "at": incident.at.isoformat()} for incident in outcome.incidents
        ]
    if rule.decided_by is not None:
        decision["decided_by"] = rule.decided_by
    if outcome.status is Status.BLOCKED:
        decision["blocked_action"] = rule.action
    if outcome.exception is not None:
        grant = outcome.exception
        decision["exception"] = {
            "id": grant.id,
            "role": grant.role,
            "from": grant.from_.isoformat(),
            "until": grant.until.isoformat(),
        }
    if outcome.legal_hold:
        until = outcome.legal_hold_until
        decision["legal_hold"] = {"until": until.isoformat() if until else None}
    if outcome.error is not None:
        decision["error"] = outcome.error
    return decision


def calls_for_something(outcome: Outcome) -> bool:
    """Printed without --all: a rule that fires, a blocked action, an error."""
    return outcome.status is not Status.NOT_APPLICABLE


def json_value(value: Any) -> Any:
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is date or kind is datetime:
        return value.isoformat()
    if kind is Decimal:
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (list, tuple)):
        return [json_value(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, (date, bool, int, float, str)):
        return value.isoformat() if isinstance(value, date) else value
    return str(value)


_PLAIN = frozenset({str, int, bool, float, type(None)})
