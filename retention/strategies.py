"""Carrying out decisions: one small strategy per action, in one registry.

The vocabulary of actions is rules.actions.ACTIONS; this registry says how an
applied action changes the store. Each strategy answers two questions: would
the action change anything for this subject now (`changes`), and how to make
the change inside the caller's transaction (`apply`, through the batch's
writes, store.repositories.writes). Reports and proposals
are never applied here: they are findings, stored for people to act on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Protocol

from kodex.errors import BrokenInvariant, PurgeFailed
from kodex.retention.recordings import delete_recording
from kodex.rules.actions import ACTIONS, Effect
from kodex.rules.records import CameraRecording, ExceptionGrant, Incident, Reader
from kodex.store.codec import contract_json, split_reader
from kodex.store.crypto import MasterKey
from kodex.store.repositories.writes import Writes

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
    request_due: dict[str, date] = field(default_factory=dict)  # action -> the earliest due day of its open requests
    decided_on: date | None = None  # the day a proposal's decision is applied for (in the library's zone)
    folder: Path | None = None  # a recording's library's recordings folder: the only place its purge deletes
    instruction: str | None = None  # the id of the instruction the action being applied becomes (retention.outbox)


class Strategy(Protocol):
    def changes(self, subject: Loaded) -> bool: ...

    def apply(self, writes: Writes, subject: Loaded, master: MasterKey) -> None: ...


class _Anonymise:
    """Destroy the data key and the personal and guardian data; keep what statistics need; detach loans."""

    def changes(self, subject: Loaded) -> bool:
        return subject.state != "anonymised"

    def apply(self, writes: Writes, subject: Loaded, master: MasterKey) -> None:
        writes.anonymise_reader(subject.pk, datetime.now(UTC))
        writes.detach_loans(subject.library, subject.id)
        # the log names incidents by pseudonym: new ones, so no logged decision leads to the reader's incidents
        writes.detach_incidents(subject.library, subject.id)
        # exceptions and holds about the reader go too: their reason and grantor text may say who it was
        writes.delete_exceptions(subject.library, subject.id)
        _forget_holds(writes, subject)
        # the reader's requests wait for the instruction (open until the library system has done it); they stay,
        # unlinked, as proof they were handled in time
        _requests_await(writes, subject, ("erasure", "loan_history_erasure"), unlink=True)
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
        writes.erase_guardian(subject.pk, facts, sealed.wrapped_key, sealed.blob)


class _EraseLoanHistory:
    """Delete the reader's returned loans; loans still out stay (they are obligations)."""

    def changes(self, subject: Loaded) -> bool:
        return subject.returned_loans > 0 or "loan_history_erasure" in subject.open_requests

    def apply(self, writes: Writes, subject: Loaded, master: MasterKey) -> None:
        writes.remember_erased_loans(subject.library, subject.id, datetime.now(UTC))
        writes.erase_returned_loans(subject.library, subject.id)
        _requests_await(writes, subject, ("loan_history_erasure",), unlink=False)


class _Flag:
    """A state transition on the reader's row: `column` set to `value`, if it is not already."""

    def __init__(self, column: str, value: Any, applies: Callable[[Loaded], bool]) -> None:
        self.column, self.value, self.applies = column, value, applies

    def changes(self, subject: Loaded) -> bool:
        return self.applies(subject)

    def apply(self, writes: Writes, subject: Loaded, master: MasterKey) -> None:
        writes.set_reader(subject.pk, self.column, self.value)
        setattr(subject, self.column, self.value)


class _Exclude:
    """An exclusion proposal accepted by its deciding role: services blocked for good (no rule lifts the block)."""

    def changes(self, subject: Loaded) -> bool:
        return not subject.excluded

    def apply(self, writes: Writes, subject: Loaded, master: MasterKey) -> None:
        if subject.decided_on is None:
            raise ValueError("an exclusion is applied as of the day its proposal is accepted; none was given")
        writes.exclude(subject.pk, subject.decided_on.isoformat())
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
        writes.purge_recording(subject.pk)
        _forget_holds(writes, subject)
        writes.remember_purged(subject.library, subject.id, datetime.now(UTC))


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


def _forget_holds(writes: Writes, subject: Loaded) -> None:
    writes.forget_holds(subject.library, subject.subject_type, subject.id)


def _requests_await(writes: Writes, subject: Loaded, kinds: tuple[str, ...], *, unlink: bool) -> None:
    """The reader's open requests of `kinds` wait for the action's instruction: done when it is done (no longer
    laid over the record, so no later run applies the action again for them)."""
    if subject.instruction is None:
        raise BrokenInvariant("an action that carries out requests is applied with the id of its instruction")
    writes.requests_await(subject.library, subject.id, kinds, subject.instruction, unlink=unlink)
    if unlink:  # requests already done keep no link either
        writes.unlink_requests(subject.library, subject.id)
