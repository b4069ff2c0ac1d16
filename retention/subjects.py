"""Subjects as a run (or a question about one subject) sees them: stored rows, decrypted, with what stands for them.

Set-based per batch: a batch's exceptions, incidents, findings, returned-loan
counts, open data-subject requests and kodex-set legal holds are read with one
query each (store.repositories.batches). Two things kodex records itself are laid over the library's
record before the rules decide (the record stays as imported):

- an open data-subject request sets `erasure_requested_at` or
  `history_erasure_requested_at` to the day it was received (the earlier
  day wins when the record carries one too);
- a legal hold the dpo set in kodex stands beside the record's own hold;
  the one that lasts longer applies.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from pydantic import ValidationError

from kodex.errors import SubjectNotFound
from kodex.retention.strategies import Loaded
from kodex.rules.records import CameraRecording, ExceptionGrant, Incident, LegalHold, Reader
from kodex.store import Connection, Engine
from kodex.store.codec import exception_text, hold_reason, reader_record
from kodex.store.crypto import MasterKey
from kodex.store.database import reading
from kodex.store.repositories.batches import (
    SIDES,
    exceptions_of,
    findings_of,
    holds_of,
    incidents_of,
    one_reader,
    open_requests_of,
    returned_loan_counts,
)

__all__ = ["REQUEST_FIELDS", "SubjectLoader", "hold_aad", "load_reader"]

REQUEST_FIELDS = {"erasure": "erasure_requested_at", "loan_history_erasure": "history_erasure_requested_at"}
REQUEST_ACTIONS = {"erasure": "anonymise", "loan_history_erasure": "erase_loan_history"}  # what carries each out


class SubjectLoader:
    def __init__(self, master: MasterKey, library: str, recordings_folder: Path | None = None) -> None:
        """`recordings_folder`: where the library's recordings may lie (a purge deletes nothing without it)."""
        self.master, self.library, self.folder = master, library, recordings_folder

    def readers(
        self,
        connection: Connection,
        rows: Sequence[Any],
        sides: frozenset[str] = frozenset(SIDES),
        returned: dict[str, int] | None = None,
    ) -> list[Loaded]:
        """The rows' readers; `sides` and `returned` when the caller knows already what is there (one reader)."""
        ids = [row.id for row in rows]
        grants = self._grants(connection, ids) if "grants" in sides else {}
        history: dict[str, list[Incident]] = defaultdict(list)
        if "incidents" in sides:
            for row in incidents_of(connection, self.library, ids):
                history[row.reader].append(
                    Incident(  # named by its pseudonym: decisions list the incidents they counted
                        type="incident", library=row.library, id=row.pseudonym, reader=row.reader, kind=row.kind,
                        at=_day(row.at),
                    )
                )  # fmt: skip
        standing = self._findings(connection, "reader", [row.pseudonym for row in rows]) if "findings" in sides else {}
        if returned is None:
            returned = returned_loan_counts(connection, self.library, ids)
        requested, kinds, dues = self._requests(connection, ids) if "requests" in sides else ({}, {}, {})
        holds = self._holds(connection, "reader", ids) if "holds" in sides else {}
        loaded = []
        for row in rows:
            overlaid: dict[str, Any] = {}
            try:
                record = reader_record(row.facts, row.wrapped_key, row.sealed, self.master)
                parsed = Reader.model_validate_json(json.dumps(record))
                reader: Reader | None
                reader, overlaid = _overlay(parsed, requested.get(row.id, {}), holds.get(row.id))
                failure = None
            except (InvalidTag, ValidationError, KeyError, ValueError) as error:
                reader = None
                failure = f"the reader's stored record could not be read ({type(error).__name__}); not acted on"
            loaded.append(
                Loaded(
                    "reader", row.rid, row.library, row.id, row.pseudonym,
                    reader if reader is not None else _placeholder(row), row.state, row.blocked,
                    standing.get(row.pseudonym, {}), returned.get(row.id, 0),
                    grants.get(row.id, []), history.get(row.id, []), failure,
                    excluded=row.excluded_as_of is not None, overlaid=overlaid,
                    open_requests=frozenset(kinds.get(row.id, ())), request_due=dues.get(row.id, {}),
                )
            )  # fmt: skip
        return loaded

    def recordings(self, connection: Connection, rows: Sequence[Any]) -> list[Loaded]:
        ids = [row.id for row in rows]
        grants = self._grants(connection, ids)
        standing = self._findings(connection, "camera_recording", [row.pseudonym for row in rows])
        holds = self._holds(connection, "camera_recording", ids)
        loaded = []
        for row in rows:
            try:
                own = _hold(row, self.master)
                failure = None
            except (InvalidTag, ValueError) as error:  # decided as an error, never purged while its hold is unknown
                own = LegalHold(reason="(unreadable)", until=None)
                failure = f"the recording's stored legal hold could not be read ({type(error).__name__}); not acted on"
            record = CameraRecording(
                type="camera_recording", library=row.library, id=row.id, camera=row.camera,
                start=_day(row.start), end=_day(row.end), location=row.location,
                legal_hold=_longer(own, holds.get(row.id)),
            )  # fmt: skip
            loaded.append(
                Loaded(
                    "camera_recording", row.cid, row.library, row.id, row.pseudonym, record,
                    findings=standing.get(row.pseudonym, {}), grants=grants.get(row.id, []), failure=failure,
                    folder=self.folder,
                )
            )  # fmt: skip
        return loaded

    def _grants(self, connection: Connection, ids: list[str]) -> dict[str, list[ExceptionGrant]]:
        """The subjects' exceptions; one revoked as of a day applies up to the day before (then not at all)."""
        found: dict[str, list[ExceptionGrant]] = defaultdict(list)
        for row in exceptions_of(connection, self.library, ids):
            until = row.until
            if row.revoked_as_of is not None:
                until = min(until, date.fromisoformat(str(row.revoked_as_of)[:10]) - timedelta(days=1))
            found[row.subject].append(
                ExceptionGrant.model_validate(
                    {
                        "type": "exception", "library": row.library, "id": row.pseudonym, "subject": row.subject,
                        "rule": row.rule, "role": row.role, "granted_by": exception_text(self.master, row, "granted_by"),
                        "reason": exception_text(self.master, row, "reason"), "from": row._mapping["from"], "until": until,
                    }
                )
            )  # fmt: skip
        return found

    def _findings(self, connection: Connection, subject_type: str, pseudonyms: list[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = defaultdict(dict)
        for row in findings_of(connection, self.library, subject_type, pseudonyms):
            found[row.subject][row.rule] = row
        return found

    def _requests(
        self, connection: Connection, ids: list[str]
    ) -> tuple[dict[str, dict[str, date]], dict[str, set[str]], dict[str, dict[str, date]]]:
        """Per reader: the request fields laid over the record, the kinds open, and per action the earliest due day."""
        found: dict[str, dict[str, date]] = defaultdict(dict)
        kinds: dict[str, set[str]] = defaultdict(set)
        dues: dict[str, dict[str, date]] = defaultdict(dict)
        for row in open_requests_of(connection, self.library, ids):
            kinds[row.reader].add(row.kind)
            action = REQUEST_ACTIONS[row.kind]
            due = dues[row.reader].get(action)
            dues[row.reader][action] = row.due_on if due is None else min(due, row.due_on)
            field = REQUEST_FIELDS[row.kind]
            known = found[row.reader].get(field)
            found[row.reader][field] = row.received_on if known is None else min(known, row.received_on)
        return found, kinds, dues

    def _holds(self, connection: Connection, subject_type: str, ids: list[str]) -> dict[str, LegalHold]:
        found = {}
        for row in holds_of(connection, self.library, subject_type, ids):
            reason = self.master.unwrap(row.reason, hold_aad(self.library, subject_type, row.subject)).decode()
            found[row.subject] = LegalHold(reason=reason, until=row.until)
        return found


def load_reader(engine: Engine, master: MasterKey, library: str, reader_id: str) -> Loaded:
    """One reader, loaded as a run would load it; SubjectNotFound when the library holds no such reader."""
    with reading(engine) as connection:
        row = one_reader(connection, library, reader_id)
        if row is None:
            raise SubjectNotFound(f"library {library!r} holds no reader with this id")
        sides = frozenset(side for side in SIDES if row._mapping[side])
        return SubjectLoader(master, library).readers(connection, [row], sides, {row.id: row.returned})[0]


def hold_aad(library: str, subject_type: str, subject: str) -> bytes:
    return f"hold/{library}/{subject_type}/{subject}".encode()


def _overlay(reader: Reader, requested: dict[str, date], hold: LegalHold | None) -> tuple[Reader, dict[str, Any]]:
    changes: dict[str, Any] = {}
    for field, received in requested.items():
        current = getattr(reader, field)
        current_day = current.date() if isinstance(current, datetime) else current
        if current_day is None or received < current_day:
            changes[field] = received
    held = _longer(reader.legal_hold, hold)
    if held is not reader.legal_hold:
        changes["legal_hold"] = held
    if not changes:
        return reader, {}
    original = {name: getattr(reader, name) for name in changes}
    return reader.model_copy(update=changes), original


def _longer(recorded: LegalHold | None, kept: LegalHold | None) -> LegalHold | None:
    """Of the record's hold and the one kept in kodex, the one that lasts longer (no end: longest)."""
    if recorded is None or kept is None:
        return kept if recorded is None else recorded
    if recorded.until is None:
        return recorded
    if kept.until is None or kept.until > recorded.until:
        return kept
    return recorded


def _day(text: str) -> date | datetime:
    return date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text)


def _hold(row: Any, master: MasterKey) -> LegalHold | None:
    """A recording's own legal hold: its day in clear, its reason unwrapped."""
    if row.legal_hold is None:
        return None
    until = row.legal_hold["until"]
    return LegalHold(reason=hold_reason(master, row), until=date.fromisoformat(until) if until else None)


def _placeholder(row: Any) -> Reader:
    """A reader with no readable data: only decided as an error, never acted on."""
    return Reader(type="reader", library=row.library, id=row.id, kind="person")
