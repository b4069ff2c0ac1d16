"""The action vocabulary of a decision (the README, "Decisions"), in one registry.

Each action names the subject it acts on, the effects a rule may give it
(applied automatically, reported as a finding, or proposed for a director's
decision) and whether it destroys data. A destructive action is blocked by an
active legal hold (e.g. SVK PK čl. 9 odst. 6) and by an exception on its rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["ACTIONS", "RETAIN", "Action", "Effect", "action"]


class Effect(StrEnum):
    """How a decision is carried out."""

    APPLY = "apply"
    REPORT = "report"
    PROPOSE = "propose"


@dataclass(frozen=True, slots=True)
class Action:
    name: str
    subjects: frozenset[str]
    effects: frozenset[Effect]
    destructive: bool
    meaning: str


def _action(name: str, subjects: str, effects: str, destructive: bool, meaning: str) -> Action:
    return Action(
        name,
        frozenset(subjects.split()),
        frozenset(Effect(e) for e in effects.split()),
        destructive,
        meaning,
    )


RETAIN = "retain"

ACTIONS: dict[str, Action] = {
    a.name: a
    for a in (
        _action("anonymise", "reader", "apply", True, "destroy identity, keep what statistics need"),
        _action("erase_guardian_data", "reader", "apply", True, "erase the guardian's data"),
        _action("erase_loan_history", "reader", "apply", True, "erase the loan history; registration stays"),
        _action("registration_expired", "reader", "apply report", False, "registration has lapsed"),
        _action("require_guardian", "reader", "report", False, "guardian's data must be recorded"),
        _action("reject_registration", "reader", "report propose", False, "registration is not allowed"),
        _action("missing_mandatory_data", "reader", "report", False, "mandatory data are missing"),
        _action("flag_excess_data", "reader", "report", False, "data beyond the regulation's inventory are held"),
        _action("block_services", "reader", "apply", False, "services suspended"),
        _action("lift_block", "reader", "apply", False, "suspension lifted"),
        _action("propose_exclusion", "reader", "propose", False, "exclusion proposed to the deciding role"),
        _action("revoke_reservations", "reader", "propose", False, "right to reserve withdrawn (a proposal)"),
        _action("purge", "camera_recording", "apply", True, "delete the recording"),
    )
}


def action(name: str) -> Action:
    """The registered action called `name` (KeyError when there is none)."""
    return ACTIONS[name]
