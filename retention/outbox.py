"""The instruction feed's one builder: an applied action becomes an instruction to the library system.

An instruction is written through the same `Writes` as its action and its decision (retention.run,
services.proposals), so all three commit together or not at all: no decision without its instruction, none without
its decision, and as an applied action is never applied twice, no instruction is written twice. What the library
system must do (`what`) is read from rules.actions.INSTRUCTED when the instruction is shown; its deadline
(`due_on`) is the library's dated period for the action (policies.yaml, `instructions.due`), counted from the day
it was applied, and no later than the data-subject request it carries out (GDPR Art. 12(3)).

The subject's id in the library system is the one value that leaves kodex with an instruction; it is stored
wrapped by the master key (bound to the instruction's id), with a keyed digest to find it by (`subject_key`).
"""

from __future__ import annotations

import uuid
from datetime import date, datetime

from kodex.errors import BrokenInvariant
from kodex.rules.actions import ACTIONS, EXCLUDE, INSTRUCTED, Effect
from kodex.rules.periods import add_period
from kodex.rules.ruleset import CompiledLibrary, param_value
from kodex.store.crypto import MasterKey

__all__ = ["PENDING", "PROPOSED_AS", "due_on", "instruction_row", "subject_aad", "subject_key"]

PENDING = "pending"

# Every action kodex applies reaches the library system: a new applied action without its instruction text would
# fail every subject it is decided for, so it is refused when kodex starts. An accepted proposal is instructed as
# what it carries out.
PROPOSED_AS = {"propose_exclusion": EXCLUDE}
_APPLIED = {name for name, action in ACTIONS.items() if Effect.APPLY in action.effects}
if not set(INSTRUCTED) >= _APPLIED or not set(PROPOSED_AS.values()) <= set(INSTRUCTED):
    raise BrokenInvariant(f"every applied action is instructed; without: {sorted(_APPLIED - set(INSTRUCTED))}")


def subject_key(master: MasterKey, library: str, subject_type: str, subject_id: str) -> bytes:
    """The keyed digest an instruction is found by from its subject (the import's verification)."""
    return master.digest(f"instruction\x00{library}\x00{subject_type}\x00{subject_id}".encode())


def subject_aad(instruction_id: str) -> bytes:
    return f"instruction/{instruction_id}/subject".encode()


def due_on(library: CompiledLibrary, action: str, day: date, request_due: date | None = None) -> date | None:
    """The day the library system must have carried `action` out by, applied on `day` (None: no deadline)."""
    deadlines = library.library.instructions
    dated = deadlines.due.get(action) if deadlines is not None else None
    period = param_value(dated, day) if dated else None
    due = add_period(day, period) if period is not None else None
    if request_due is not None:
        due = request_due if due is None else min(due, request_due)
    return due


def instruction_row(
    master: MasterKey,
    library: CompiledLibrary,
    *,
    subject_type: str,
    subject_id: str,
    action: str,
    decision_id: str,
    rule: str,
    cite: str | None,
    day: date,
    at: datetime,
    request_due: date | None = None,
) -> dict[str, object]:
    """The instructions row for an applied `action` (decided in `decision_id`, on the library's `day`)."""
    if action not in INSTRUCTED:
        raise BrokenInvariant(f"{action!r} is not an action the library system is instructed to carry out")
    instruction_id = str(uuid.uuid4())
    return {
        "id": instruction_id,
        "library": library.id,
        "action": action,
        "subject_type": subject_type,
        "subject_id": master.wrap(subject_id.encode(), subject_aad(instruction_id)),
        "subject_key": subject_key(master, library.id, subject_type, subject_id),
        "decision_id": decision_id,
        "rule": rule,
        "cite": cite,
        "created_at": at,
        "due_on": due_on(library, action, day, request_due),
        "state": PENDING,
        "attempts": 0,
        "next_attempt_at": at,
    }
