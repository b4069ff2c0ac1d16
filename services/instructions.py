"""The instruction feed: what the library system must do to mirror what kodex applied, and what it did.

Every applied action the library system must mirror becomes an instruction in the same transaction as its decision
(retention.outbox). Here they are read (the pull API, `kodex instructions list`, the work list) and given their
outcomes (`kodex instructions outcome`, POST …/outcome, the adapters, the import's verification).

States: pending → delivered (a webhook answered 2xx) → done | failed | rejected (the library system says it
cannot, with its code); not_carried_out when an import shows the data still there. `overdue` is a view: pending or
delivered past `due_on` (in the library's time zone). An outcome is idempotent — the same one again changes nothing
— and one that contradicts a final outcome (done, rejected) is a Conflict, with one exception: the import's
verification turns `done` into `not_carried_out` (the data arrived again), and the library system may then report
`done` again. Every outcome is a decision-log entry with ids and the library system's code only; its free-text
detail is stored wrapped by the master key. A data-subject request waits for its instruction: `done` finishes it,
`not_carried_out` opens it again.
"""

from __future__ import annotations

import re
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from kodex.audit.entries import instruction_entry, now
from kodex.audit.log import append
from kodex.clock import library_today
from kodex.errors import BrokenInvariant, Conflict, InvalidRequest, SubjectNotFound
from kodex.retention.outbox import subject_aad, subject_key
from kodex.rules.actions import INSTRUCTED
from kodex.rules.ruleset import Ruleset
from kodex.store.crypto import MasterKey
from kodex.store.database import Connection, Engine
from kodex.store.repositories import instructions as stored

__all__ = [
    "FINAL",
    "IMPORT",
    "NOT_CARRIED_OUT",
    "OUTCOMES",
    "STATES",
    "VIEWS",
    "Instruction",
    "get_instruction",
    "instruction_from_row",
    "list_instructions",
    "mark_not_carried_out",
    "record_outcome",
    "record_outcomes",
    "state_counts",
]

STATES = ("pending", "delivered", "done", "failed", "rejected", "not_carried_out")
VIEWS = (*STATES, "overdue", "all")  # what `--state` and `?state=` take
OUTCOMES = ("done", "failed", "rejected")  # what the library system may report
FINAL = ("done", "rejected")  # an outcome after these must be the same one (else Conflict), but for NOT_CARRIED_OUT
NOT_CARRIED_OUT = "not_carried_out"  # the import's verification only: done, yet the data arrived again
IMPORT = "import"  # who records NOT_CARRIED_OUT (`by`)
CODE = re.compile(r"^[A-Za-z0-9_.:\-]{1,100}$")  # a machine code (e.g. has_debt): it is logged, so no free text
MAX_DETAIL = 2000
MAX_PAGE = 1000


@dataclass(frozen=True)
class Instruction:
    id: str
    sequence: int
    library: str
    action: str
    subject_type: str
    subject_id: str  # the library system's own id: the one place it leaves kodex
    decision_id: str
    rule: str
    cite: str | None
    what: str
    created_at: datetime
    due_on: date | None
    state: str
    overdue: bool
    attempts: int
    outcome_code: str | None
    outcome_detail: str | None
    outcome_at: datetime | None

    @property
    def what_cs(self) -> str:
        return INSTRUCTED[self.action].cs

    def as_json(self) -> dict[str, Any]:
        """The vendor-neutral form: the pull API, `--format jsonl`, the webhook's `data` (README, "Instructions")."""
        outcome = None
        if self.outcome_at is not None:
            outcome = {"code": self.outcome_code, "detail": self.outcome_detail, "at": _iso(self.outcome_at)}
        return {
            "id": self.id,
            "sequence": self.sequence,
            "library": self.library,
            "action": self.action,
            "subject_type": self.subject_type,
            "subject_id": self.subject_id,
            "decision_id": self.decision_id,
            "rule": self.rule,
            "cite": self.cite,
            "what": self.what,
            "created_at": _iso(self.created_at),
            "due_on": self.due_on.isoformat() if self.due_on else None,
            "state": self.state,
            "overdue": self.overdue,
            "attempts": self.attempts,
            "outcome": outcome,
        }


def list_instructions(
    engine: Engine,
    ruleset: Ruleset,
    master: MasterKey,
    library: str,
    *,
    state: str = "all",
    after: int = 0,
    limit: int | None = None,
) -> list[Instruction]:
    """The library's instructions in `state` (a state, `overdue` or `all`) after sequence `after`, in order."""
    if state not in VIEWS:
        raise InvalidRequest(f"unknown state {state!r}; one of: {', '.join(VIEWS)}")
    if after < 0:
        raise InvalidRequest("after must be a sequence number, 0 or more")
    if limit is not None and limit < 1:
        raise InvalidRequest("limit must be 1 or more")
    today = library_today(ruleset, library)
    states = None if state in {"all", "overdue"} else [state]
    with engine.connect() as connection:
        rows = stored.page(
            connection, library, states=states, overdue_before=today if state == "overdue" else None, after=after,
            limit=limit,
        )  # fmt: skip
    return [instruction_from_row(row, master, today) for row in rows]


def get_instruction(
    engine: Engine, ruleset: Ruleset, master: MasterKey, library: str, instruction_id: str
) -> Instruction:
    with engine.connect() as connection:
        row = stored.by_id(connection, library, instruction_id)
    if row is None:
        raise SubjectNotFound(f"library {library!r} has no instruction {instruction_id}")
    return instruction_from_row(row, master, library_today(ruleset, library))


def record_outcome(
    engine: Engine,
    ruleset: Ruleset,
    master: MasterKey,
    library: str,
    instruction_id: str,
    outcome: str,
    *,
    code: str | None = None,
    detail: str | None = None,
    actor: Mapping[str, Any],
    by: str = "integration",
) -> tuple[Instruction, bool]:
    """Record what the library system did about an instruction; (the instruction, whether anything changed).

    The same outcome again changes nothing; another outcome after done or rejected (or the same with another code)
    is a Conflict. `done` finishes the data-subject requests that waited for the instruction. `not_carried_out` is
    the import's (verification), never the library system's.
    """
    given = [(instruction_id, outcome, code, detail)]
    return record_outcomes(engine, ruleset, master, library, given, actor=actor, by=by)[0]


def record_outcomes(
    engine: Engine,
    ruleset: Ruleset,
    master: MasterKey,
    library: str,
    given: Sequence[tuple[str, str, str | None, str | None]],
    *,
    actor: Mapping[str, Any],
    by: str = "integration",
) -> list[tuple[Instruction, bool]]:
    """`record_outcome` for each (instruction id, outcome, code, detail), all in one transaction: every one is
    recorded, or (an error on any) none is — a work list loaded from a file is loaded whole or not at all."""
    for _, outcome, code, detail in given:
        _check_outcome(outcome, code, detail, by)
    at = datetime.now(UTC)
    day = library_today(ruleset, library)
    done: list[tuple[Instruction, bool]] = []
    with engine.begin() as connection:
        entries = []
        for instruction_id, outcome, code, detail in given:
            row = stored.by_id(connection, library, instruction_id, lock=True)
            if row is None:
                raise SubjectNotFound(f"library {library!r} has no instruction {instruction_id}")
            if not _changes(row, outcome, code, by):
                done.append((instruction_from_row(row, master, day), False))
                continue
            wrapped = master.wrap(detail.encode(), _detail_aad(instruction_id)) if detail else None
            stored.set_outcome(connection, row.id, state=outcome, code=code, detail=wrapped, at=at, by=by)
            _requests_follow(connection, row, outcome, at)
            entries.append(_entry(row, outcome, code, at, actor))
            changed = stored.by_id(connection, library, instruction_id)
            if changed is None:
                raise BrokenInvariant("an instruction given its outcome is gone within the same transaction")
            done.append((instruction_from_row(changed, master, day), True))
        if entries:
            append(connection, library, day, entries)
    return done


def _check_outcome(outcome: str, code: str | None, detail: str | None, by: str) -> None:
    if outcome not in (*OUTCOMES, NOT_CARRIED_OUT):
        raise InvalidRequest(f"unknown outcome {outcome!r}; one of: {', '.join(OUTCOMES)}")
    if outcome == NOT_CARRIED_OUT and by != IMPORT:
        raise InvalidRequest("not_carried_out is found by the next import, never reported: report failed instead")
    if code is not None and not CODE.match(code):
        raise InvalidRequest("code must be 1 to 100 letters, digits or _ . : - (a machine code such as has_debt)")
    if detail is not None and len(detail) > MAX_DETAIL:
        raise InvalidRequest(f"detail may be {MAX_DETAIL} characters at most")


def _changes(row: Any, outcome: str, code: str | None, by: str) -> bool:
    """Whether `outcome` (with `code`) changes the instruction: False for the same again; Conflict if it contradicts
    a final one (done, rejected; the import alone may find a done one not carried out)."""
    if row.state == outcome and row.outcome_code == code:
        return False
    if row.state in FINAL and not _verified(row.state, outcome, by):
        said = f"{outcome} with code {code}" if row.state == outcome else outcome
        raise Conflict(
            f"instruction {row.id} is {row.state} already (code {row.outcome_code or 'none'}, since "
            f"{_iso(row.outcome_at)}); it cannot become {said}"
        )
    return True


def mark_not_carried_out(
    connection: Connection,
    ruleset: Ruleset,
    master: MasterKey,
    library: str,
    subjects: Mapping[str, Sequence[tuple[str, str]]],
    *,
    code: Mapping[str, str],
    actor: Mapping[str, Any],
) -> Counter[str]:
    """The import's verification, inside the import's transaction: the library's instructions marked done whose
    subject arrived again with the data they were to remove become not_carried_out; how many, per action.

    `subjects`: per action, the (subject_type, subject id) pairs the import saw come back; `code`: per action, the
    outcome code that says what came back. One query for them all, then one outcome each (few: only those done).
    """
    keys: dict[bytes, set[str]] = {}
    for action, pairs in subjects.items():
        for subject_type, subject_id in pairs:
            keys.setdefault(subject_key(master, library, subject_type, subject_id), set()).add(action)
    if not keys:
        return Counter()
    rows = stored.done_of_subjects(connection, library, list(keys), sorted({a for own in keys.values() for a in own}))
    rows = [row for row in rows if row.action in keys.get(row.subject_key, ())]
    at = datetime.now(UTC)
    entries = []
    for row in rows:
        stored.set_outcome(
            connection, row.id, state=NOT_CARRIED_OUT, code=code.get(row.action), detail=None, at=at, by=IMPORT
        )
        _requests_follow(connection, row, NOT_CARRIED_OUT, at)
        entries.append(_entry(row, NOT_CARRIED_OUT, code.get(row.action), at, actor))
    if entries:
        append(connection, library, library_today(ruleset, library), entries)
    return Counter(row.action for row in rows)


def _verified(state: str, outcome: str, by: str) -> bool:
    """The one change a final state allows: the import finds done not carried out after all."""
    return state == "done" and outcome == NOT_CARRIED_OUT and by == IMPORT


def _requests_follow(connection: Connection, row: Any, outcome: str, at: datetime) -> None:
    """The requests waiting for the instruction are done with it, and open again when it was not carried out."""
    if outcome == "done":
        stored.finish_requests(connection, row.id, at)
    elif outcome == NOT_CARRIED_OUT and row.state == "done":
        stored.reopen_requests(connection, row.id)


def _entry(row: Any, outcome: str, code: str | None, at: datetime, actor: Mapping[str, Any]) -> dict[str, Any]:
    return instruction_entry(
        str(uuid.uuid4()), row.library, instruction=row.id, sequence=row.sequence, decision=row.decision_id,
        subject_type=row.subject_type, rule=row.rule, cite=row.cite, action=row.action, outcome=outcome,
        code=code, as_of=at.isoformat(), actor=dict(actor), time=now(),
    )  # fmt: skip


def state_counts(engine: Engine, ruleset: Ruleset, library: str) -> dict[str, int]:
    """How many instructions are in each state, and `overdue`: what the run summary and the dpo see."""
    with engine.connect() as connection:
        counts = stored.count_by_state(connection, library, library_today(ruleset, library))
    return {state: counts.get(state, 0) for state in (*STATES, "overdue")}


def instruction_from_row(row: Any, master: MasterKey, today: date) -> Instruction:
    """An instructions row as the view the feed gives (`today`: the library's, for `overdue`)."""
    detail = None
    if row.outcome_detail is not None:
        detail = master.unwrap(row.outcome_detail, _detail_aad(row.id)).decode()
    overdue = row.state in stored.OPEN_STATES and row.due_on is not None and row.due_on < today
    return Instruction(
        row.id, int(row.sequence), row.library, row.action, row.subject_type,
        master.unwrap(row.subject_id, subject_aad(row.id)).decode(), row.decision_id, row.rule, row.cite,
        INSTRUCTED[row.action].en, _aware(row.created_at), row.due_on, row.state, overdue, int(row.attempts),
        row.outcome_code, detail, _aware(row.outcome_at) if row.outcome_at else None,
    )  # fmt: skip


def _detail_aad(instruction_id: str) -> bytes:
    return f"instruction/{instruction_id}/detail".encode()


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _iso(at: datetime | None) -> str | None:
    """UTC in ISO 8601 with Z, as the HTTP service writes a date-time: jsonl and the pull API give the same text."""
    return _aware(at).astimezone(UTC).isoformat().replace("+00:00", "Z") if at is not None else None
