"""Log entries: what the decision log holds, one canonical JSON object per entry (schema version 1).

Every entry has the same keys, null where a key does not apply:

    version         1, the schema of this entry
    kind            decision | run_summary | exception_granted | exception_revoked | proposal_decided |
                    user_added | user_revoked | access_copy_read | agreement_recorded | instruction_outcome
    id              the entry's (decision's) id, a UUID
    library         the library whose log it is in
    time            when it was logged (UTC, ISO 8601)
    as_of           the moment the decision is about
    run             the run that logged it, if a run did
    actor           who caused it: {"type": "run"|"import"|"user"|"cli"|"connector", "id": …, "role": …}
                    (`cli`: someone at the server's command line, who holds the master key)
    subject_type    reader | camera_recording
    subject         the subject's pseudonym: random, stored with the subject, erased when a reader is anonymised
    rule, cite      the rule and the article it applies
    action, effect  what the rule calls for, and whether kodex applies, reports or proposes it
    outcome         applied | reported | proposed | retained | failed | error (decisions);
                    finished | failed (run summary); granted | revoked (exceptions); accepted | rejected
                    (proposals); added | revoked (users); read (an Art. 15 copy); recorded (an agreement);
                    done | failed | rejected | not_carried_out (an instruction to the library system)
    reasons         each condition, whether it held and the values it compared (personal values withheld)
    policy_revision the policy the decision was taken under
    exception       the pseudonym of the exception that applied, or that was granted or revoked
    details         what the kind adds: incidents counted, who decides a proposal, a hold's end, an error,
                    an exception's role and dates, a run's counts and who started it (`started_by`), a user's
                    id and role, an agreement's day and the SHA-256 of its reference, an instruction's id,
                    sequence, decision and the library system's code

The canonical form is JSON with sorted keys, no spaces, UTF-8: the bytes that
are hashed into the Merkle tree (`canonical`). Nothing in an entry names a
person: subjects, exceptions and incidents appear by pseudonym, never by the
library system's ids (which may embed a card number); values of facts that
are personal data themselves (rules.facts.PERSONAL_FACTS) are withheld; free
text (an exception's reason, who granted it, a user's name, an agreement's
reference) is never copied in: a user is named by its random id, an agreement's
reference by its SHA-256 (whoever holds the agreement can check it).

The builders here make plain dicts (fast enough for a million entries a
night); `LogEntry` is the strict model the verifier and the offline proof
checker read entries back with.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from kodex.rules.facts import PERSONAL_FACTS
from kodex.store.codec import canonical  # the bytes of an entry that are hashed

__all__ = [
    "CLI",
    "KINDS",
    "SCHEMA_VERSION",
    "WITHHELD",
    "Actor",
    "LogEntry",
    "access_copy_entry",
    "agreement_entry",
    "canonical",
    "decision_entry",
    "exception_entry",
    "instruction_entry",
    "now",
    "proposal_entry",
    "run_summary_entry",
    "user_entry",
]

SCHEMA_VERSION = 1
WITHHELD = "(withheld: personal data)"
KINDS = (
    "decision",
    "run_summary",
    "exception_granted",
    "exception_revoked",
    "proposal_decided",
    "user_added",
    "user_revoked",
    "access_copy_read",
    "agreement_recorded",
    "instruction_outcome",
)
CLI: dict[str, Any] = {"type": "cli", "id": None, "role": None}  # the server's command line (it holds the master key)
_DECISION_DETAILS = ("incidents", "decided_by", "legal_hold", "blocked_action", "error")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Actor(_Strict):
    type: Literal["run", "import", "user", "cli", "connector"]
    id: str | None
    role: str | None


class Reason(_Strict):
    condition: str
    holds: bool | None
    values: dict[str, Any]
    due_after: Any


class LogEntry(_Strict):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    version: Annotated[int, Field(ge=SCHEMA_VERSION, le=SCHEMA_VERSION)]  # an int: `true` is not 1 here
    kind: Literal[
        "decision",
        "run_summary",
        "exception_granted",
        "exception_revoked",
        "proposal_decided",
        "user_added",
        "user_revoked",
        "access_copy_read",
        "agreement_recorded",
        "instruction_outcome",
    ]
    id: str
    library: str
    time: str
    as_of: str
    run: str | None
    actor: Actor
    subject_type: str | None
    subject: str | None
    rule: str | None
    cite: str | None
    action: str | None
    effect: str | None
    outcome: str
    reasons: list[Reason]
    policy_revision: str | None
    exception: str | None
    details: dict[str, Any]


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def decision_entry(decision: Mapping[str, Any], time: str) -> dict[str, Any]:
    """The entry of one decision a run recorded (retention.run builds it with rules.decision.build_decision)."""
    grant = decision.get("exception")
    details = {key: decision[key] for key in _DECISION_DETAILS if key in decision}
    if grant is not None:
        details["exception"] = {"role": grant["role"], "from": grant["from"], "until": grant["until"]}
    return _entry(
        kind="decision",
        id=decision["decision_id"],
        library=decision["library"],
        time=time,
        as_of=decision["as_of"],
        run=decision["run_id"],
        actor={"type": "run", "id": decision["run_id"], "role": None},
        subject_type=decision["subject_type"],
        subject=decision["subject"],
        rule=decision["rule"],
        cite=decision.get("cite"),
        action=decision["action"],
        effect=decision.get("effect"),
        outcome=decision["outcome"],
        reasons=[_reason(r) for r in decision.get("reasons", ())],
        policy_revision=decision.get("policy_revision"),
        exception=None if grant is None else grant["id"],
        details=details,
    )


def run_summary_entry(
    entry_id: str,
    library: str,
    run_id: str,
    as_of: str,
    revision: str,
    summary: Mapping[str, Any],
    full: bool,
    time: str,
    *,
    outcome: Literal["finished", "failed"] = "finished",
) -> dict[str, Any]:
    """The one entry of a run that closes it: how many subjects it reviewed and what it decided, by count.

    `summary` names who started the run (`started_by`) and, for a run that failed, the error's type.
    """
    return _entry(
        kind="run_summary",
        id=entry_id,
        library=library,
        time=time,
        as_of=as_of,
        run=run_id,
        actor={"type": "run", "id": run_id, "role": None},
        outcome=outcome,
        policy_revision=revision,
        details={**summary, "full": full},
    )


def exception_entry(
    entry_id: str,
    library: str,
    *,
    granted: bool,
    exception: str,
    subject_type: str | None,
    subject: str | None,
    rule: str,
    role: str,
    from_: str,
    until: str,
    as_of: str,
    actor: Mapping[str, Any],
    time: str,
    revision: str | None = None,
) -> dict[str, Any]:
    """An exception granted or revoked: its pseudonym, rule, subject, authority and dates (never reason or name)."""
    return _entry(
        kind="exception_granted" if granted else "exception_revoked",
        id=entry_id,
        library=library,
        time=time,
        as_of=as_of,
        actor=dict(actor),
        subject_type=subject_type,
        subject=subject,
        rule=rule,
        outcome="granted" if granted else "revoked",
        policy_revision=revision,
        exception=exception,
        details={"role": role, "from": from_, "until": until},
    )


def proposal_entry(
    entry_id: str,
    library: str,
    *,
    proposal: str,
    accepted: bool,
    subject_type: str,
    subject: str,
    rule: str,
    cite: str | None,
    action: str,
    as_of: str,
    actor: Mapping[str, Any],
    time: str,
    revision: str | None = None,
) -> dict[str, Any]:
    """A proposal (e.g. an exclusion) accepted or rejected by the role the rule names; `proposal` is its entry id."""
    return _entry(
        kind="proposal_decided",
        id=entry_id,
        library=library,
        time=time,
        as_of=as_of,
        actor=dict(actor),
        subject_type=subject_type,
        subject=subject,
        rule=rule,
        cite=cite,
        action=action,
        effect="propose",
        outcome="accepted" if accepted else "rejected",
        policy_revision=revision,
        details={"proposal": proposal},
    )


def user_entry(
    entry_id: str, library: str, *, added: bool, user: str, role: str, actor: Mapping[str, Any], time: str
) -> dict[str, Any]:
    """A token issued (`added`) or revoked: the user's random id and role, and who did it (never a name)."""
    return _entry(
        kind="user_added" if added else "user_revoked",
        id=entry_id,
        library=library,
        time=time,
        as_of=time,
        actor=dict(actor),
        outcome="added" if added else "revoked",
        details={"user": user, "role": role},
    )


def access_copy_entry(
    entry_id: str, library: str, *, subject: str | None, actor: Mapping[str, Any], time: str
) -> dict[str, Any]:
    """Someone read a reader's Art. 15 copy: who, which reader (its pseudonym; None once anonymised), when."""
    return _entry(
        kind="access_copy_read",
        id=entry_id,
        library=library,
        time=time,
        as_of=time,
        actor=dict(actor),
        subject_type="reader",
        subject=subject,
        outcome="read",
    )


def agreement_entry(
    entry_id: str, library: str, *, signed_on: str, reference: str, actor: Mapping[str, Any], time: str
) -> dict[str, Any]:
    """A data-processing agreement recorded (GDPR Art. 28): its day, and its reference by SHA-256 (free text)."""
    return _entry(
        kind="agreement_recorded",
        id=entry_id,
        library=library,
        time=time,
        as_of=time,
        actor=dict(actor),
        outcome="recorded",
        details={"signed_on": signed_on, "reference_sha256": hashlib.sha256(reference.encode()).hexdigest()},
    )


def instruction_entry(
    entry_id: str,
    library: str,
    *,
    instruction: str,
    sequence: int,
    decision: str,
    subject_type: str,
    rule: str,
    cite: str | None,
    action: str,
    outcome: str,
    code: str | None,
    as_of: str,
    actor: Mapping[str, Any],
    time: str,
) -> dict[str, Any]:
    """An instruction's outcome in the library system (or found not carried out): ids and the system's code only.

    The subject is named by neither id nor pseudonym: the instruction's `decision` is the entry that does. The
    library system's free-text detail is never copied in.
    """
    return _entry(
        kind="instruction_outcome",
        id=entry_id,
        library=library,
        time=time,
        as_of=as_of,
        actor=dict(actor),
        subject_type=subject_type,
        rule=rule,
        cite=cite,
        action=action,
        effect="apply",
        outcome=outcome,
        details={"instruction": instruction, "sequence": sequence, "decision": decision, "code": code},
    )


def _entry(
    *,
    kind: str,
    id: str,
    library: str,
    time: str,
    as_of: str,
    actor: dict[str, Any],
    outcome: str,
    run: str | None = None,
    subject_type: str | None = None,
    subject: str | None = None,
    rule: str | None = None,
    cite: str | None = None,
    action: str | None = None,
    effect: str | None = None,
    reasons: Sequence[dict[str, Any]] = (),
    policy_revision: str | None = None,
    exception: str | None = None,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "version": SCHEMA_VERSION,
        "kind": kind,
        "id": id,
        "library": library,
        "time": time,
        "as_of": as_of,
        "run": run,
        "actor": actor,
        "subject_type": subject_type,
        "subject": subject,
        "rule": rule,
        "cite": cite,
        "action": action,
        "effect": effect,
        "outcome": outcome,
        "reasons": list(reasons),
        "policy_revision": policy_revision,
        "exception": exception,
        "details": details or {},
    }


def _reason(reason: Mapping[str, Any]) -> dict[str, Any]:
    values = {name: WITHHELD if name in PERSONAL_FACTS else value for name, value in reason["values"].items()}
    return {
        "condition": reason["condition"],
        "holds": reason["holds"],
        "values": values,
        "due_after": reason.get("due_after"),
    }
