"""Carrying out decisions: one small strategy per action, in one registry.

The vocabulary of actions is rules.actions.ACTIONS; this registry says how an
applied action changes the store. Each strategy answers two questions: would
the action change anything for this subject now (`changes`), and how to make
the change inside the caller's transaction (`apply`). Reports and proposals
are never applied here: they are findings, stored for people to act on.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Protocol

from sqlalchemy import Connection, String, bindparam, delete, func, literal, select, update

from rules.actions import ACTIONS, Effect
from rules.records import CameraRecording, ExceptionGrant, Incident, Reader
from store.codec import contract_json, split_reader
from store.crypto import MasterKey
from store.schema import (
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

__all__ = ["STRATEGIES", "Loaded", "PurgeFailed", "Strategy", "strategy_for"]


class PurgeFailed(Exception):
    """A recording's file could not be deleted; its row stays and the purge is retried the next night."""


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


class Strategy(Protocol):
    def changes(self, subject: Loaded) -> bool: ...

    def apply(self, connection: Connection, subject: Loaded, master: MasterKey) -> None: ...


class _Anonymise:
    """Destroy the data key and the personal and guardian data; keep what statistics need; detach loans."""

    def changes(self, subject: Loaded) -> bool:
        return subject.state != "anonymised"

    def apply(self, connection: Connection, subject: Loaded, master: MasterKey) -> None:
        connection.execute(
            update(readers)
            .where(readers.c.rid == subject.pk)
            .values(
                wrapped_key=None,
                sealed=None,
                digest=None,
                pseudonym=None,
                state="anonymised",
                blocked=False,
                anonymised_at=datetime.now(UTC),
            )
        )
        connection.execute(
            update(loans).where(loans.c.library == subject.library, loans.c.reader == subject.id).values(reader=None)
        )
        # the log names incidents by pseudonym: new ones, so no logged decision leads to the reader's incidents
        connection.execute(
            update(incidents)
            .where(incidents.c.library == subject.library, incidents.c.reader == subject.id)
            .values(reader=None, pseudonym=_random_hex(connection))
        )
        # exceptions and holds about the reader go too: their reason and grantor text may say who it was
        connection.execute(
            delete(exceptions).where(exceptions.c.library == subject.library, exceptions.c.subject == subject.id)
        )
        _forget_holds(connection, subject)
        # the reader's requests are done; they stay, unlinked, as proof they were handled in time
        _requests_done(connection, subject, ("erasure", "loan_history_erasure"), unlink=True)
        subject.state = "anonymised"


class _EraseGuardian:
    def changes(self, subject: Loaded) -> bool:
        assert isinstance(subject.record, Reader)
        guardian = subject.record.guardian
        return bool(guardian and any(guardian.values()))

    def apply(self, connection: Connection, subject: Loaded, master: MasterKey) -> None:
        assert isinstance(subject.record, Reader)
        # stored as imported: what kodex lays over the record (requests, holds) is not written into it
        record = contract_json(subject.record.model_copy(update={"guardian": None, **subject.overlaid}))
        facts, sealed = split_reader(record, master)
        connection.execute(
            update(readers)
            .where(readers.c.rid == subject.pk)
            .values(facts=facts, wrapped_key=sealed.wrapped_key, sealed=sealed.blob)
        )


class _EraseLoanHistory:
    """Delete the reader's returned loans; loans still out stay (they are obligations)."""

    def changes(self, subject: Loaded) -> bool:
        return subject.returned_loans > 0 or "loan_history_erasure" in subject.open_requests

    def apply(self, connection: Connection, subject: Loaded, master: MasterKey) -> None:
        returned = (loans.c.library == subject.library, loans.c.reader == subject.id, loans.c.returned_at.is_not(None))
        connection.execute(  # remembered by id only, so an import does not bring them back
            erased_loans.insert().from_select(
                ["library", "id", "erased_at"],
                select(loans.c.library, loans.c.id, literal(datetime.now(UTC))).where(*returned),
            )
        )
        connection.execute(delete(loans).where(*returned))
        _requests_done(connection, subject, ("loan_history_erasure",), unlink=False)


class _Flag:
    """A state transition on the reader's row: `column` set to `value`, if it is not already."""

    def __init__(self, column: str, value: Any, applies: Callable[[Loaded], bool]) -> None:
        self.column, self.value, self.applies = column, value, applies

    def changes(self, subject: Loaded) -> bool:
        return self.applies(subject)

    def apply(self, connection: Connection, subject: Loaded, master: MasterKey) -> None:
        connection.execute(update(readers).where(readers.c.rid == subject.pk).values({self.column: self.value}))
        setattr(subject, self.column, self.value)


class _Exclude:
    """An exclusion proposal accepted by its deciding role: services blocked for good (no rule lifts the block)."""

    def changes(self, subject: Loaded) -> bool:
        return not subject.excluded

    def apply(self, connection: Connection, subject: Loaded, master: MasterKey) -> None:
        if subject.decided_on is None:
            raise ValueError("an exclusion is applied as of the day its proposal is accepted; none was given")
        connection.execute(
            update(readers)
            .where(readers.c.rid == subject.pk)
            .values(blocked=True, excluded_as_of=subject.decided_on.isoformat())
        )
        subject.blocked = subject.excluded = True


class _Purge:
    """Delete the recording's file at its location, then its row (and remember it was purged)."""

    def changes(self, subject: Loaded) -> bool:
        return True

    def apply(self, connection: Connection, subject: Loaded, master: MasterKey) -> None:
        assert isinstance(subject.record, CameraRecording)
        location = subject.record.location
        try:
            os.remove(location)
        except FileNotFoundError:
            pass  # already gone (e.g. deleted before a crash, then the run was repeated)
        except OSError as error:
            raise PurgeFailed(
                f"the recording's file could not be deleted ({type(error).__name__}); "
                "its row stays and the purge is retried the next night"
            ) from None
        connection.execute(delete(camera_recordings).where(camera_recordings.c.cid == subject.pk))
        _forget_holds(connection, subject)
        connection.execute(
            purged_recordings.insert().values(library=subject.library, id=subject.id, purged_at=datetime.now(UTC))
        )


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
assert set(STRATEGIES) >= _APPLICABLE, f"actions without a strategy: {sorted(_APPLICABLE - set(STRATEGIES))}"


def strategy_for(action: str) -> Strategy:
    return STRATEGIES[action]


_RETURNED = (  # built once (its cache key is kept): called for every batch of a run and every explanation
    select(loans.c.reader, func.count())
    .where(
        loans.c.library == bindparam("library"),
        loans.c.reader.in_(bindparam("ids", expanding=True)),
        loans.c.returned_at.is_not(None),
    )
    .group_by(loans.c.reader)
)


def returned_loan_counts(connection: Connection, library: str, reader_ids: list[str]) -> dict[str, int]:
    if not reader_ids:
        return {}
    return {reader: count for reader, count in connection.execute(_RETURNED, {"library": library, "ids": reader_ids})}


def _forget_holds(connection: Connection, subject: Loaded) -> None:
    connection.execute(
        delete(legal_holds).where(
            legal_holds.c.library == subject.library,
            legal_holds.c.subject_type == subject.subject_type,
            legal_holds.c.subject == subject.id,
        )
    )


def _requests_done(connection: Connection, subject: Loaded, kinds: tuple[str, ...], *, unlink: bool) -> None:
    values: dict[str, Any] = {"status": "done", "done_at": datetime.now(UTC)}
    if unlink:
        values["reader"] = None
    connection.execute(
        update(subject_requests)
        .where(
            subject_requests.c.library == subject.library,
            subject_requests.c.reader == subject.id,
            subject_requests.c.kind.in_(kinds),
            subject_requests.c.status == "open",
        )
        .values(values)
    )
    if unlink:  # requests already done keep no link either
        connection.execute(
            update(subject_requests)
            .where(subject_requests.c.library == subject.library, subject_requests.c.reader == subject.id)
            .values(reader=None)
        )


def _random_hex(connection: Connection) -> Any:
    """A fresh random 32-hex-digit value per row, computed by the database."""
    if connection.dialect.name == "postgresql":
        return func.md5(func.gen_random_uuid().cast(String))
    return func.lower(func.hex(func.randomblob(16)))
