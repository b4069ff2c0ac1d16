"""A batch's applied writes: what the nightly job's actions, findings and review dates change in the store.

`Writes` queues each change as a prebuilt statement and its values, and `flush` runs each statement once, as one
executemany, for all the rows it was given. The statements are built once and bound per row (bind names carry a
`b_` prefix where a column of the same name is set). Everything runs in the caller's connection and transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, String, bindparam, delete, func, literal_column, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from kodex.store.schema import (
    camera_recordings,
    erased_loans,
    exceptions,
    findings,
    incidents,
    instruction_heads,
    instructions,
    legal_holds,
    loans,
    purged_recordings,
    readers,
    subject_requests,
)

__all__ = ["FindingKey", "Writes", "add_instructions", "set_next_review", "set_reviews"]


class FindingKey(NamedTuple):
    """A finding is the library's, about one subject (by pseudonym), under one rule."""

    library: str
    subject_type: str
    subject: str
    rule: str


def _bp(name: str) -> Any:
    return bindparam(name)


_ANONYMISE_READER = (
    update(readers)
    .where(readers.c.rid == _bp("b_pk"))
    .values(
        wrapped_key=None, sealed=None, digest=None, pseudonym=None, state="anonymised", blocked=False,
        anonymised_at=_bp("b_at"),
    )
)  # fmt: skip
_DETACH_LOANS = (
    update(loans).where(loans.c.library == _bp("b_library"), loans.c.reader == _bp("b_reader")).values(reader=None)
)
_DELETE_EXCEPTIONS = delete(exceptions).where(
    exceptions.c.library == _bp("b_library"), exceptions.c.subject == _bp("b_reader")
)
_FORGET_HOLDS = delete(legal_holds).where(
    legal_holds.c.library == _bp("b_library"),
    legal_holds.c.subject_type == _bp("b_type"),
    legal_holds.c.subject == _bp("b_subject"),
)
_UNLINK_REQUESTS = (
    update(subject_requests)
    .where(subject_requests.c.library == _bp("b_library"), subject_requests.c.reader == _bp("b_reader"))
    .values(reader=None)
)
_ERASE_GUARDIAN = (
    update(readers)
    .where(readers.c.rid == _bp("b_pk"))
    .values(facts=_bp("b_facts"), wrapped_key=_bp("b_wrapped_key"), sealed=_bp("b_sealed"))
)
_RETURNED_LOANS = (
    loans.c.library == _bp("b_library"),
    loans.c.reader == _bp("b_reader"),
    loans.c.returned_at.is_not(None),
)
_REMEMBER_ERASED = erased_loans.insert().from_select(  # remembered by id only, so an import does not bring them back
    ["library", "id", "erased_at"], select(loans.c.library, loans.c.id, _bp("b_at")).where(*_RETURNED_LOANS)
)
_ERASE_RETURNED = delete(loans).where(*_RETURNED_LOANS)
_EXCLUDE = (
    update(readers).where(readers.c.rid == _bp("b_pk")).values(blocked=True, excluded_as_of=_bp("b_excluded_as_of"))
)
_PURGE_ROW = delete(camera_recordings).where(camera_recordings.c.cid == _bp("b_pk"))
_REMEMBER_PURGED = purged_recordings.insert().values(library=_bp("b_library"), id=_bp("b_id"), purged_at=_bp("b_at"))
_PURGE_FAILED = (
    update(camera_recordings)
    .where(camera_recordings.c.cid == _bp("b_pk"))
    .values(purge_failures=camera_recordings.c.purge_failures + 1)
)

_FINDING_FIELDS = ("action", "effect", "basis", "decided_by")
_FINDING = (
    findings.c.library == _bp("b_library"),
    findings.c.subject_type == _bp("b_type"),
    findings.c.subject == _bp("b_subject"),
    findings.c.rule == _bp("b_rule"),
)
_OPENED: dict[str, Any] = {
    **{name: _bp(f"b_{name}") for name in _FINDING_FIELDS},
    "status": "open", "decision_id": _bp("b_decision_id"), "opened_as_of": _bp("b_opened_as_of"),
    "closed_as_of": None,
}  # fmt: skip
_OPEN = findings.insert().values(
    library=_bp("b_library"), subject_type=_bp("b_type"), subject=_bp("b_subject"), rule=_bp("b_rule"), **_OPENED
)
_REOPEN = update(findings).where(*_FINDING).values(_OPENED)
_RESOLVE = update(findings).where(*_FINDING).values(status="resolved", closed_as_of=_bp("b_closed_as_of"))

_SUBJECTS = {"reader": (readers, readers.c.rid), "camera_recording": (camera_recordings, camera_recordings.c.cid)}
_REVIEW = {
    subject_type: update(table)
    .where(key == _bp("b_pk"))
    .values(next_review=_bp("b_next_review"), reviewed_as_of=_bp("b_reviewed_as_of"))
    for subject_type, (table, key) in _SUBJECTS.items()
}
_READER_FLAGS: dict[tuple[str, Any], Any] = {}  # (column, value) -> its statement, built at first use
_AWAIT: dict[tuple[tuple[str, ...], bool], Any] = {}
_NEW_INCIDENT_PSEUDONYMS: dict[str, Any] = {}


class Writes:
    """The statements a batch of actions issues, run together: each statement once for all its rows.

    Each method queues one statement's values; `flush` runs each statement as one executemany, in the order the
    statements were first queued (a subject's statements keep their order: each strategy queues its own in a fixed
    order, and no two strategies share a statement in a different order). On PostgreSQL an executemany is one
    pipelined round trip instead of one per row.
    """

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self._queued: dict[Any, list[dict[str, Any]]] = {}
        self._instructions: list[dict[str, Any]] = []

    def flush(self) -> None:
        for statement, rows in self._queued.items():
            self.connection.execute(statement, rows)
        self._queued.clear()
        if self._instructions:
            add_instructions(self.connection, self._instructions)
            self._instructions = []

    # -- the instruction feed (the outbox) -----------------------------------------------------------------------------

    def instruct(self, row: dict[str, Any]) -> None:
        """An instruction to the library system, written with the batch (its `sequence` is given at flush)."""
        self._instructions.append(row)

    # -- readers -------------------------------------------------------------------------------------------------------

    def anonymise_reader(self, pk: int, at: datetime) -> None:
        """Its data key, personal data and pseudonym gone; state anonymised, unblocked."""
        self._add(_ANONYMISE_READER, b_pk=pk, b_at=at)

    def erase_guardian(self, pk: int, facts: Any, wrapped_key: bytes, sealed: bytes) -> None:
        """The reader's record rewritten without its guardian's data."""
        self._add(_ERASE_GUARDIAN, b_pk=pk, b_facts=facts, b_wrapped_key=wrapped_key, b_sealed=sealed)

    def set_reader(self, pk: int, column: str, value: Any) -> None:
        """One column of the reader's row set to a fixed value (a state transition: lapsed, blocked, unblocked)."""
        key = (column, value)
        if key not in _READER_FLAGS:
            _READER_FLAGS[key] = update(readers).where(readers.c.rid == _bp("b_pk")).values({column: value})
        self._add(_READER_FLAGS[key], b_pk=pk)

    def exclude(self, pk: int, excluded_as_of: str) -> None:
        self._add(_EXCLUDE, b_pk=pk, b_excluded_as_of=excluded_as_of)

    def detach_loans(self, library: str, reader: str) -> None:
        self._add(_DETACH_LOANS, b_library=library, b_reader=reader)

    def detach_incidents(self, library: str, reader: str) -> None:
        """The reader's incidents detached, each under a fresh random pseudonym computed by the database."""
        self._add(_detach_incidents(self.connection.dialect.name), b_library=library, b_reader=reader)

    def delete_exceptions(self, library: str, reader: str) -> None:
        self._add(_DELETE_EXCEPTIONS, b_library=library, b_reader=reader)

    def forget_holds(self, library: str, subject_type: str, subject: str) -> None:
        """The legal holds kept in kodex for the subject."""
        self._add(_FORGET_HOLDS, b_library=library, b_type=subject_type, b_subject=subject)

    def requests_await(
        self, library: str, reader: str, kinds: tuple[str, ...], instruction: str, *, unlink: bool
    ) -> None:
        """The reader's open requests of `kinds` not yet waiting for an instruction wait for `instruction` (and are no
        longer linked to the reader, with `unlink`); they stay open until it is done."""
        self._add(_requests_await(kinds, unlink), b_library=library, b_reader=reader, b_instruction=instruction)

    def unlink_requests(self, library: str, reader: str) -> None:
        """Every request of the reader's, done or not, no longer linked to the reader."""
        self._add(_UNLINK_REQUESTS, b_library=library, b_reader=reader)

    def remember_erased_loans(self, library: str, reader: str, at: datetime) -> None:
        """The reader's returned loans remembered as erased (by id only, so an import does not bring them back)."""
        self._add(_REMEMBER_ERASED, b_library=library, b_reader=reader, b_at=at)

    def erase_returned_loans(self, library: str, reader: str) -> None:
        self._add(_ERASE_RETURNED, b_library=library, b_reader=reader)

    # -- recordings ----------------------------------------------------------------------------------------------------

    def purge_recording(self, pk: int) -> None:
        self._add(_PURGE_ROW, b_pk=pk)

    def remember_purged(self, library: str, recording: str, at: datetime) -> None:
        self._add(_REMEMBER_PURGED, b_library=library, b_id=recording, b_at=at)

    def purge_failed(self, pk: int) -> None:
        """One more failed purge counted on the recording's row."""
        self._add(_PURGE_FAILED, b_pk=pk)

    # -- findings and review dates -------------------------------------------------------------------------------------

    def open_finding(self, key: FindingKey, finding: dict[str, Any], decision_id: str, as_of: str) -> None:
        """A new finding, open; `finding` holds its action, effect, basis and decided_by."""
        self._add(_OPEN, **_finding_values(key, finding, decision_id, as_of))

    def reopen_finding(self, key: FindingKey, finding: dict[str, Any], decision_id: str, as_of: str) -> None:
        """The subject's finding under the rule open again, as the new decision says."""
        self._add(_REOPEN, **_finding_values(key, finding, decision_id, as_of))

    def resolve_finding(self, key: FindingKey, as_of: str) -> None:
        self._add(_RESOLVE, **_finding_key(key), b_closed_as_of=as_of)

    def review(self, subject_type: str, pk: int, next_review: date, reviewed_as_of: str) -> None:
        """The subject's next review date (one subject; a batch's go together through set_reviews)."""
        self._add(_REVIEW[subject_type], b_pk=pk, b_next_review=next_review, b_reviewed_as_of=reviewed_as_of)

    def _add(self, statement: Any, **values: Any) -> None:
        self._queued.setdefault(statement, []).append(values)


def set_reviews(connection: Connection, reviews: Sequence[tuple[str, int, date]], as_of: str) -> None:
    """Every subject's next review date, (subject_type, pk, day), in one statement per table (no round trip each)."""
    for subject_type, (table, key) in _SUBJECTS.items():
        rows = [
            {"b_pk": pk, "next_review": day, "reviewed_as_of": as_of} for t, pk, day in reviews if t == subject_type
        ]
        if rows:
            connection.execute(update(table).where(key == bindparam("b_pk")), rows)


def set_next_review(connection: Connection, subject_type: str, pk: int, day: date) -> None:
    """One subject's next review date, alone (a subject whose actions failed is due again on `day`)."""
    table, key = _SUBJECTS[subject_type]
    connection.execute(update(table).where(key == pk).values(next_review=day))


def _finding_key(key: FindingKey) -> dict[str, str]:
    return {"b_library": key.library, "b_type": key.subject_type, "b_subject": key.subject, "b_rule": key.rule}


def _finding_values(key: FindingKey, finding: dict[str, Any], decision_id: str, as_of: str) -> dict[str, Any]:
    values = {f"b_{name}": finding.get(name) for name in _FINDING_FIELDS}
    return {**_finding_key(key), **values, "b_decision_id": decision_id, "b_opened_as_of": as_of}


def _requests_await(kinds: tuple[str, ...], unlink: bool) -> Any:
    key = (kinds, unlink)
    if key not in _AWAIT:
        values: dict[str, Any] = {"instruction": _bp("b_instruction")}
        if unlink:
            values["reader"] = None
        _AWAIT[key] = (
            update(subject_requests)
            .where(
                subject_requests.c.library == _bp("b_library"),
                subject_requests.c.reader == _bp("b_reader"),
                or_(*(subject_requests.c.kind == literal_column(f"'{kind}'") for kind in kinds)),  # no IN: executemany
                subject_requests.c.status == "open",
                subject_requests.c.instruction.is_(None),
            )
            .values(values)
        )
    return _AWAIT[key]


def _detach_incidents(dialect: str) -> Any:
    if dialect not in _NEW_INCIDENT_PSEUDONYMS:
        fresh = (
            func.md5(func.gen_random_uuid().cast(String))
            if dialect == "postgresql"
            else func.lower(func.hex(func.randomblob(16)))
        )
        _NEW_INCIDENT_PSEUDONYMS[dialect] = (
            update(incidents)
            .where(incidents.c.library == _bp("b_library"), incidents.c.reader == _bp("b_reader"))
            .values(reader=None, pseudonym=fresh)
        )
    return _NEW_INCIDENT_PSEUDONYMS[dialect]


def add_instructions(connection: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Insert instructions (column values, without `sequence`), numbered on from each library's head.

    The head's row is updated first: it stays locked until the transaction ends, so a library's instructions are
    numbered in the order their transactions commit, and a reader of the feed paging by sequence misses none.
    """
    by_library: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_library.setdefault(row["library"], []).append(row)
    numbered: list[dict[str, Any]] = []
    for library, own in by_library.items():
        last = _take_sequences(connection, library, len(own))
        numbered.extend({**row, "sequence": last - len(own) + i + 1} for i, row in enumerate(own))
    connection.execute(instructions.insert(), numbered)


def _take_sequences(connection: Connection, library: str, count: int) -> int:
    """Move the library's head on by `count` (creating it at 0 first); the new last sequence."""
    bump = (
        update(instruction_heads)
        .where(instruction_heads.c.library == library)
        .values(sequence=instruction_heads.c.sequence + count)
        .returning(instruction_heads.c.sequence)
    )
    last = connection.execute(bump).scalar_one_or_none()
    if last is None:
        insert = _upsert(connection.dialect.name)(instruction_heads).values(library=library, sequence=0)
        connection.execute(insert.on_conflict_do_nothing(index_elements=["library"]))
        last = connection.execute(bump).scalar_one()
    return int(last)


def _upsert(dialect: str) -> Any:
    return pg_insert if dialect == "postgresql" else sqlite_insert
