"""Carrying out decisions: one small strategy per action, in one registry.

The vocabulary of actions is rules.actions.ACTIONS; this registry says how an
applied action changes the store. Each strategy answers two questions: would
the action change anything for this subject now (`changes`), and how to make
the change inside the caller's transaction (`apply`). Reports and proposals
are never applied here: they are findings, stored for people to act on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Connection, String, bindparam, delete, func, literal_column, or_, select, update

from kodex.errors import BrokenInvariant, PurgeFailed
from kodex.retention.recordings import delete_recording
from kodex.rules.actions import ACTIONS, Effect
from kodex.rules.records import CameraRecording, ExceptionGrant, Incident, Reader
from kodex.store.codec import contract_json, split_reader
from kodex.store.crypto import MasterKey
from kodex.store.schema import (
    camera_recordings,
    erased_loans,
    exceptions,
    incidents,
    legal_holds,
    loans,
    purged_recordings,
    readers,
    subject_requests,
)
from kodex.store.sql import one_of

__all__ = ["STRATEGIES", "Loaded", "PurgeFailed", "Strategy", "Writes", "strategy_for"]


@dataclass
class Loaded:
    """A subject as a run sees it: its record (decrypted), its row's state, and what stands for it."""

    subject_type: str  # reader or camera_recording
    pk: int
    library: str
    id: str
    pseudonym: str
    record: Reader | CameraRecording
    state: str = "active"
    blocked: bool = False
    findings: dict[str, Any] = field(default_factory=dict)  # rule id -> findings row
    returned_loans: int = 0
    grants: list[ExceptionGrant] = field(default_factory=list)
    incidents: list[Incident] = field(default_factory=list)
    failure: str | None = None  # the stored record could not be read: decided as an error, never acted on
    excluded: bool = False  # an exclusion proposal was accepted: the block stays
    overlaid: dict[str, Any] = field(default_factory=dict)  # record fields kodex laid over (their stored values)
    open_requests: frozenset[str] = frozenset()  # kinds of the reader's open data-subject requests
    decided_on: date | None = None  # the day a proposal's decision is applied for (in the library's zone)
    folder: Path | None = None  # a recording's library's recordings folder: the only place its purge deletes


class Writes:
    """The statements a batch of actions issues, run together: each statement once for all its rows.

    Strategies add a prebuilt statement and its values; `flush` runs each statement as one executemany, in the
    order the statements were first added (a subject's statements keep their order: each strategy adds its own in
    a fixed order, and no two strategies share a statement in a different order). On PostgreSQL an executemany is
    one pipelined round trip instead of one per row. Everything runs in the caller's transaction.
    """

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self._queued: dict[Any, list[dict[str, Any]]] = {}

    def add(self, statement: Any, **values: Any) -> None:
        self._queued.setdefault(statement, []).append(values)

    def flush(self) -> None:
        for statement, rows in self._queued.items():
            self.connection.execute(statement, rows)
        self._queued.clear()


class Strategy(Protocol):
    def changes(self, subject: Loaded) -> bool: ...

    def apply(self, writes: Writes, subject: Loaded, master: MasterKey) -> None: ...


def _bp(name: str) -> Any:
    return bindparam(name)


# Built once, bound per row (names prefixed b_ where a column of the same name is set).
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
_DONE: dict[tuple[tuple[str, ...], bool], Any] = {}
_NEW_INCIDENT_PSEUDONYMS: dict[str, Any] = {}


def _requests_done_statement(kinds: tuple[str, ...], unlink: bool) -> Any:
    key = (kinds, unlink)
    if key not in _DONE:
        values: dict[str, Any] = {"status": "done", "done_at": _bp("b_at")}
        if unlink:
            values["reader"] = None
        _DONE[key] = (
            update(subject_requests)
            .where(
                subject_requests.c.library == _bp("b_library"),
                subject_requests.c.reader == _bp("b_reader"),
                or_(*(subject_requests.c.kind == literal_column(f"'{kind}'") for kind in kinds)),  # no IN: executemany
                subject_requests.c.status == "open",
            )
            .values(values)
        )
    return _DONE[key]


def _detach_incidents(dialect: str) -> Any:
    """The reader's incidents detached, each under a fresh random pseudonym computed by the database."""
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


class _Anonymise:
    """Destroy the data key and the personal and guardian data; keep what statistics need; detach loans."""

    def changes(self, subject: Loaded) -> bool:
        return subject.state != "anonymised"

    def apply(self, writes: Writes, subject: Loaded, master: MasterKey) -> None:
        reader = {"b_library": subject.library, "b_reader": subject.id}
        writes.add(_ANONYMISE_READER, b_pk=subject.pk, b_at=datetime.now(UTC))
        writes.add(_DETACH_LOANS, **reader)
        # the log names incidents by pseudonym: new ones, so no logged decision leads to the reader's incidents
        writes.add(_detach_incidents(writes.connection.dialect.name), **reader)
        # exceptions and holds about the reader go too: their reason and grantor text may say who it was
        writes.add(_DELETE_EXCEPTIONS, **reader)
        _forget_holds(writes, subject)
        # the reader's requests are done; they stay, unlinked, as proof they were handled in time
        _requests_done(writes, subject, ("erasure", "loan_history_erasure"), unlink=True)
        subject.state = "anonymised"


class _EraseGuardian:
    def changes(self, subject: Loaded) -> bool:
        if not isinstance(subject.record, Reader):
            raise BrokenInvariant("erase_guardian_data is decided for readers only")
        guardian = subject.record.guardian
        return bool(guardian and any(guardian.values()))

    def apply(self, writes: Writes, subject: Loaded, master: MasterKey) -> None:
        if not isinstance(subject.record, Reader):
            raise BrokenInvariant("erase_guardian_data is applied to readers only")
        # stored as imported: what kodex lays over the record (requests, holds) is not written into it
        record = contract_json(subject.record.model_copy(update={"guardian": None, **subject.overlaid}))
        facts, sealed = split_reader(record, master)
        writes.add(_ERASE_GUARDIAN, b_pk=subject.pk, b_facts=facts, b_wrapped_key=sealed.wrapped_key,
                   b_sealed=sealed.blob)  # fmt: skip


class _EraseLoanHistory:
    """Delete the reader's returned loans; loans still out stay (they are obligations)."""

    def changes(self, subject: Loaded) -> bool:
        return subject.returned_loans > 0 or "loan_history_erasure" in subject.open_requests

    def apply(self, writes: Writes, subject: Loaded, master: MasterKey) -> None:
        reader = {"b_library": subject.library, "b_reader": subject.id}
        writes.add(_REMEMBER_ERASED, **reader, b_at=datetime.now(UTC))
        writes.add(_ERASE_RETURNED, **reader)
        _requests_done(writes, subject, ("loan_history_erasure",), unlink=False)


class _Flag:
    """A state transition on the reader's row: `column` set to `value`, if it is not already."""

    def __init__(self, column: str, value: Any, applies: Callable[[Loaded], bool]) -> None:
        self.column, self.value, self.applies = column, value, applies
        self.statement = update(readers).where(readers.c.rid == _bp("b_pk")).values({column: value})

    def changes(self, subject: Loaded) -> bool:
        return self.applies(subject)

    def apply(self, writes: Writes, subject: Loaded, master: MasterKey) -> None:
        writes.add(self.statement, b_pk=subject.pk)
        setattr(subject, self.column, self.value)


class _Exclude:
    """An exclusion proposal accepted by its deciding role: services blocked for good (no rule lifts the block)."""

    def changes(self, subject: Loaded) -> bool:
        return not subject.excluded

    def apply(self, writes: Writes, subject: Loaded, master: MasterKey) -> None:
        if subject.decided_on is None:
            raise ValueError("an exclusion is applied as of the day its proposal is accepted; none was given")
        writes.add(_EXCLUDE, b_pk=subject.pk, b_excluded_as_of=subject.decided_on.isoformat())
        subject.blocked = subject.excluded = True


class _Purge:
    """Delete the recording's file at its location inside the recordings folder, then its row (remembered purged).

    A location outside the folder, or through a symbolic link, is never deleted: PurgeFailed (retention.recordings).
    """

    def changes(self, subject: Loaded) -> bool:
        return True

    def apply(self, writes: Writes, subject: Loaded, master: MasterKey) -> None:
        if not isinstance(subject.record, CameraRecording):
            raise BrokenInvariant("purge is applied to camera recordings only")
        if subject.folder is None:
            raise PurgeFailed("no recordings folder is known for the recording's library; nothing was deleted")
        delete_recording(subject.record.location, subject.folder)
        writes.add(_PURGE_ROW, b_pk=subject.pk)
        _forget_holds(writes, subject)
        writes.add(_REMEMBER_PURGED, b_library=subject.library, b_id=subject.id, b_at=datetime.now(UTC))


STRATEGIES: Mapping[str, Strategy] = {
    "anonymise": _Anonymise(),
    "erase_guardian_data": _EraseGuardian(),
    "erase_loan_history": _EraseLoanHistory(),
    "registration_expired": _Flag("state", "lapsed", lambda s: s.state == "active"),
    "block_services": _Flag("blocked", True, lambda s: not s.blocked),
    "lift_block": _Flag("blocked", False, lambda s: s.blocked),
    "purge": _Purge(),
    "propose_exclusion": _Exclude(),  # carried out only when its deciding role accepts the proposal
}

_APPLICABLE = {name for name, action in ACTIONS.items() if Effect.APPLY in action.effects}
if not set(STRATEGIES) >= _APPLICABLE:
    raise BrokenInvariant(f"every applied action has a strategy; without: {sorted(_APPLICABLE - set(STRATEGIES))}")


def strategy_for(action: str) -> Strategy:
    return STRATEGIES[action]


_RETURNED = (  # built once (its cache key is kept): called for every batch of a run and every explanation
    select(loans.c.reader, func.count())
    .where(
        loans.c.library == bindparam("library"),
        one_of(loans.c.reader, "ids"),
        loans.c.returned_at.is_not(None),
    )
    .group_by(loans.c.reader)
)


def returned_loan_counts(connection: Connection, library: str, reader_ids: list[str]) -> dict[str, int]:
    if not reader_ids:
        return {}
    return {reader: count for reader, count in connection.execute(_RETURNED, {"library": library, "ids": reader_ids})}


def _forget_holds(writes: Writes, subject: Loaded) -> None:
    writes.add(_FORGET_HOLDS, b_library=subject.library, b_type=subject.subject_type, b_subject=subject.id)


def _requests_done(writes: Writes, subject: Loaded, kinds: tuple[str, ...], *, unlink: bool) -> None:
    reader = {"b_library": subject.library, "b_reader": subject.id}
    writes.add(_requests_done_statement(kinds, unlink), **reader, b_at=datetime.now(UTC))
    if unlink:  # requests already done keep no link either
        writes.add(_UNLINK_REQUESTS, **reader)
