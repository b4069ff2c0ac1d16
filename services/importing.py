"""`kodex import`: records of the contract into the store, upserted by library and id.

The whole file is validated first; a file with an invalid line writes nothing
(unless the caller skips invalid lines, each reported). Then everything is
written in one transaction, so a crash leaves the store as it was. A record
whose keyed digest equals the stored one is left alone: importing the same
file twice changes nothing. A changed record, or a new incident or exception
about a reader, makes its subject due for review at the next run. A reader
kodex has anonymised is never filled in again from an import.

The import also verifies the instructions the library system reported done
(services.instructions): a reader anonymised there who arrives again with
personal data, a guardian's data that arrives again after it was erased, a
loan erased from the history or a camera recording purged that arrives again —
each makes its instruction `not_carried_out` (counted per action in the
summary), found with one query per chunk of the file and library.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import partial
from itertools import islice
from typing import Any

from kodex.audit.entries import exception_entry, now
from kodex.audit.log import append, checkpoint
from kodex.config import Recordings
from kodex.errors import InvalidRecords
from kodex.rules.decision import json_value
from kodex.rules.nesting import json_too_deep
from kodex.rules.records import CameraRecording, ExceptionGrant, Incident, Loan, Reader
from kodex.rules.ruleset import Ruleset
from kodex.rules.validation import RecordProblem, RecordSet, read_records
from kodex.services.import_checks import ImportChecks
from kodex.services.instructions import IMPORT, mark_not_carried_out
from kodex.services.tenants import require_agreement
from kodex.store.codec import canonical, contract_json, exception_aad, new_pseudonym, seal_hold_reason, split_reader
from kodex.store.crypto import MasterKey
from kodex.store.database import Connection, Engine
from kodex.store.repositories import readers
from kodex.store.repositories.records import RECORDS, SUBJECTS

__all__ = [
    "ImportSummary", "import_records",
    ]  # fmt: skip

CHUNK = 2000


@dataclass
class ImportSummary:
    added: Counter[str] = field(default_factory=Counter)
    updated: Counter[str] = field(default_factory=Counter)
    unchanged: Counter[str] = field(default_factory=Counter)
    anonymised: int = 0  # readers kodex has anonymised: their records are not taken in again
    gone: Counter[str] = field(default_factory=Counter)  # recordings purged, loans erased: not taken in again
    not_carried_out: Counter[str] = field(default_factory=Counter)  # action -> instructions done, found not done
    skipped: list[RecordProblem] = field(default_factory=list)


def import_records(
    read: Any,  # a callable returning a fresh iterator over the file's lines (the file is read twice)
    engine: Engine,
    ruleset: Ruleset,
    master: MasterKey,
    as_of: date,
    *,
    skip_invalid: bool = False,
    progress: Callable[[str, int], None] | None = None,
    actor: Mapping[str, Any] | None = None,
    only_library: str | None = None,
    recordings: Recordings | None = None,
) -> ImportSummary:
    """Validate the whole file, then write it in one transaction; `progress(stage, lines)` after each chunk.

    Refused as a whole (NoAgreement) when a library in it has no data-processing agreement recorded.
    `only_library`: every record must be of this library (a line of another is invalid). `actor` is who the
    decision log names as granting the file's exceptions (default: the import). `recordings`: where each
    library's camera recordings may lie (Settings.recordings); without it a camera recording is an invalid line.
    """
    summary = ImportSummary()
    seen: dict[tuple[str, str, str], int] = {}
    problems: list[RecordProblem] = []
    named: list[tuple[int, str]] = []
    checks = ImportChecks(ruleset, recordings)
    for first, chunk in _chunks(read()):
        problems.extend(read_records(chunk, ruleset, as_of, first_line=first, first_seen=seen, check=checks)[1])
        for number, library in _libraries(chunk, first):
            if only_library is not None and library != only_library:
                problems.append(RecordProblem(number, "library", f"this import takes records of {only_library} only"))
            named.append((number, library))
        if progress is not None:
            progress("checking", first + len(chunk) - 1)
    with engine.connect() as connection:
        problems.extend(checks.against_store(connection))
    problems.sort(key=lambda p: p.line)
    if problems and not skip_invalid:
        raise InvalidRecords(problems)
    summary.skipped = problems
    bad = {p.line for p in problems}
    logged: set[str] = set()
    with engine.begin() as connection:
        require_agreement(connection, {library for number, library in named if number not in bad})
        for first, chunk in _chunks(read()):
            good = [line if first + i not in bad else "" for i, line in enumerate(chunk)]
            records = read_records(good, ruleset, as_of, first_line=first)[0]
            _write(connection, records, ruleset, master, summary, as_of, logged, actor)
            if progress is not None:
                progress("writing", first + len(chunk) - 1)
        for library in sorted(logged):  # exceptions granted are logged: sign the logs they went into
            checkpoint(connection, library, master, now())
    return summary


def _chunks(lines: Iterable[str]) -> Iterator[tuple[int, list[str]]]:
    iterator = iter(lines)
    first = 1
    while chunk := list(islice(iterator, CHUNK)):
        yield first, chunk
        first += len(chunk)


def _libraries(chunk: list[str], first: int) -> Iterator[tuple[int, str]]:
    """(line, library) of each line in the chunk that names one."""
    for offset, line in enumerate(chunk):
        if not line.strip() or json_too_deep(line):  # too deep to parse: reported by the validation already
            continue
        try:
            library = json.loads(line).get("library")
        except (ValueError, AttributeError):
            continue  # reported by the validation already
        if isinstance(library, str):
            yield first + offset, library


# What came back, per action whose instruction it disproves, and the outcome code that says so.
_CAME_BACK = {
    "anonymise": "personal_data_imported",
    "erase_guardian_data": "guardian_data_imported",
    "erase_loan_history": "erased_loan_imported",
    "purge": "purged_recording_imported",
}
_VERIFIER = {"type": IMPORT, "id": None, "role": None}

Returned = dict[str, list[tuple[str, str, str]]]  # action -> (library, subject_type, subject id) that came back


def _write(
    connection: Connection,
    records: RecordSet,
    ruleset: Ruleset,
    master: MasterKey,
    summary: ImportSummary,
    as_of: date,
    logged: set[str],
    actor: Mapping[str, Any] | None,
) -> None:
    due: set[tuple[str, str]] = set()
    returned: Returned = {action: [] for action in _CAME_BACK}
    _readers(connection, records.readers, master, summary, returned)
    gone = _anonymised(connection, records)
    erased: list[Any] = []
    for loan in _simple(connection, "loan", records.loans, master, summary, _loan_row, gone, erased):
        if loan.reader is not None:
            due.add((loan.library, loan.reader))
    returned["erase_loan_history"] += [(r.library, "reader", r.reader) for r in erased if r.reader is not None]
    recording_row = partial(_recording_row, master=master)
    purged: list[Any] = []
    _simple(connection, "camera_recording", records.recordings, master, summary, recording_row, gone, purged)
    returned["purge"] += [(r.library, "camera_recording", r.id) for r in purged]
    _verify(connection, ruleset, master, returned, summary, logged)
    for incident in _simple(connection, "incident", records.incidents, master, summary, _incident_row, gone):
        due.add((incident.library, incident.reader))
    grants = [g for g in records.exceptions if (g.library, g.subject) not in gone]
    summary.anonymised += len(records.exceptions) - len(grants)
    exception_row = partial(_exception_row, master=master)
    granted = _simple(connection, "exception", grants, master, summary, exception_row, gone)
    for grant in granted:
        due.add((grant.library, grant.subject))
    _log_grants(connection, granted, as_of, logged, actor)
    if due:  # a changed history or exception may change the subject's outcome: review it at the next run
        for library in {lib for lib, _ in due}:
            ids = [subject for lib, subject in due if lib == library]
            SUBJECTS["reader"].review_all_at_next_run(connection, library, ids)
            SUBJECTS["camera_recording"].review_all_at_next_run(connection, library, ids)


def _verify(
    connection: Connection,
    ruleset: Ruleset,
    master: MasterKey,
    returned: Returned,
    summary: ImportSummary,
    logged: set[str],
) -> None:
    """The instructions done whose subject came back with what they removed: not carried out (one query a library)."""
    for library in sorted({lib for seen in returned.values() for lib, _, _ in seen}):
        subjects = {
            action: [(kind, subject) for lib, kind, subject in seen if lib == library]
            for action, seen in returned.items()
        }
        found = mark_not_carried_out(connection, ruleset, master, library, subjects, code=_CAME_BACK, actor=_VERIFIER)
        if found:
            summary.not_carried_out.update(found)
            logged.add(library)  # each is an entry in the library's decision log: sign it


def _personal(reader: Reader) -> bool:
    """Whether the record carries what anonymising removes (rules.actions.INSTRUCTED["anonymise"])."""
    return reader.birth_date is not None or _filled(reader.personal) or _filled(reader.guardian)


def _filled(data: Mapping[Any, str | None] | None) -> bool:
    return data is not None and any(value for value in data.values())


def _anonymised(connection: Connection, records: RecordSet) -> set[tuple[str, str]]:
    """Readers named by the batch's loans, incidents and exceptions whom kodex has anonymised."""
    named = {(r.library, r.reader) for r in records.loans if r.reader is not None}
    named |= {(r.library, r.reader) for r in records.incidents}
    named |= {(g.library, g.subject) for g in records.exceptions}
    if not named:
        return set()
    return readers.anonymised_among(connection, named)


def _readers(
    connection: Connection, batch: Sequence[Reader], master: MasterKey, summary: ImportSummary, returned: Returned
) -> None:
    if not batch:
        return
    table = RECORDS["reader"]
    existing = table.stored(connection, [(r.library, r.id) for r in batch], "state")
    inserts, updates = [], []
    for reader in batch:
        row = existing.get((reader.library, reader.id))
        if row is not None and row.state == "anonymised":
            summary.anonymised += 1
            if _personal(reader):  # anonymised here: it must be there too
                returned["anonymise"].append((reader.library, "reader", reader.id))
            continue
        if row is not None and _filled(reader.guardian):  # an unchanged record too: kodex erased it, not the file
            returned["erase_guardian_data"].append((reader.library, "reader", reader.id))
        record = contract_json(reader)
        digest = master.digest(canonical(record))
        if row is not None and row.digest == digest:
            summary.unchanged["reader"] += 1
            continue
        facts, sealed = split_reader(record, master)
        values = {
            "facts": facts,
            "wrapped_key": sealed.wrapped_key,
            "sealed": sealed.blob,
            "digest": digest,
            "next_review": None,
        }
        if row is None:
            inserts.append(
                {"library": reader.library, "id": reader.id, "pseudonym": new_pseudonym(), "state": "active", **values}
            )
        else:
            state = "active" if row.state == "lapsed" else row.state  # a renewal arrives as an import
            updates.append({"library": reader.library, "id": reader.id, "state": state, **values})
    if inserts:
        table.add(connection, inserts)
        summary.added["reader"] += len(inserts)
    if updates:
        table.change(connection, updates)
        summary.updated["reader"] += len(updates)


def _simple(
    connection: Connection,
    record_type: str,
    batch: Sequence[Any],
    master: MasterKey,
    summary: ImportSummary,
    row_of: Any,
    anonymised: set[tuple[str, str]],
    came_back: list[Any] | None = None,
) -> list[Any]:
    """Upsert records that carry no personal data of their own; returns the records added or changed.

    A loan or incident of a reader kodex has anonymised is kept detached (for statistics), never linked again.
    Records purged or erased before are not taken in again: they are added to `came_back` (verification).
    """
    if not batch:
        return []
    table = RECORDS[record_type]
    keys = [(r.library, r.id) for r in batch]
    existing = table.stored(connection, keys)
    gone = table.gone(connection, keys)
    inserts, updates, changed = [], [], []
    for record in batch:
        if (record.library, record.id) in gone:
            summary.gone[record.type] += 1
            if came_back is not None:
                came_back.append(record)
            continue
        digest = master.digest(canonical(contract_json(record)))
        row = existing.get((record.library, record.id))
        if row is not None and row.digest == digest:
            summary.unchanged[record.type] += 1
            continue
        values = {**row_of(record), "digest": digest}
        if "reader" in values and (record.library, values["reader"]) in anonymised:
            values["reader"] = None  # detached, as anonymising left the reader's other loans and incidents
        changed.append(record)
        if row is None:
            inserts.append({"library": record.library, "id": record.id, **values})
        else:
            updates.append({"library": record.library, "id": record.id, **values})
    if inserts:
        if record_type != "loan":  # what decisions and the log name a recording, incident or exception by
            for values in inserts:
                values["pseudonym"] = new_pseudonym()
        table.add(connection, inserts)
        summary.added[record_type] += len(inserts)
    if updates:
        table.change(connection, updates)
        summary.updated[record_type] += len(updates)
    return changed


def _log_grants(
    connection: Connection,
    granted: Sequence[ExceptionGrant],
    as_of: date,
    logged: set[str],
    actor: Mapping[str, Any] | None,
) -> None:
    """Each exception granted (new, or changed and so granted anew) is an entry in its library's decision log."""
    for library in sorted({g.library for g in granted}):
        batch = [g for g in granted if g.library == library]
        ids = [g.id for g in batch]
        subjects = [g.subject for g in batch]
        named = RECORDS["exception"].pseudonyms(connection, library, ids)
        whom: dict[str, tuple[str, str]] = {}
        for kind in ("camera_recording", "reader"):  # a reader wins over a recording of the same id
            for subject_id, pseudonym in SUBJECTS[kind].pseudonyms(connection, library, subjects).items():
                whom[subject_id] = (kind, pseudonym)
        time = now()
        entries = []
        for grant in batch:
            subject_type, subject = whom.get(grant.subject, (None, None))  # a subject not imported (yet): unnamed
            entries.append(
                exception_entry(
                    str(uuid.uuid4()), library, granted=True, exception=named[grant.id],
                    subject_type=subject_type, subject=subject, rule=grant.rule, role=grant.role,
                    from_=grant.from_.isoformat(), until=grant.until.isoformat(), as_of=as_of.isoformat(),
                    actor=dict(actor or {"type": "import", "id": None, "role": None}), time=time,
                )
            )  # fmt: skip
        append(connection, library, as_of, entries)
        logged.add(library)


def _iso(value: Any) -> str | None:
    return None if value is None else str(json_value(value))


def _loan_row(loan: Loan) -> dict[str, Any]:
    return {
        "reader": loan.reader,
        "item": loan.item,
        "borrowed_at": _iso(loan.borrowed_at),
        "due_at": _iso(loan.due_at),
        "returned_at": _iso(loan.returned_at),
        "ill": loan.ill,
    }


def _recording_row(recording: CameraRecording, master: MasterKey) -> dict[str, Any]:
    hold = recording.legal_hold
    return {
        "camera": recording.camera,
        "start": _iso(recording.start),
        "end": _iso(recording.end),
        "location": recording.location,
        "legal_hold": None if hold is None else {"until": _iso(hold.until)},  # the day decides: kept in clear
        "legal_hold_reason": None if hold is None else seal_hold_reason(master, recording.library, recording.id,
                                                                        hold.reason),
        "next_review": None,
    }  # fmt: skip


def _incident_row(incident: Incident) -> dict[str, Any]:
    return {"reader": incident.reader, "kind": incident.kind, "at": _iso(incident.at)}


def _exception_row(grant: ExceptionGrant, master: MasterKey) -> dict[str, Any]:
    def sealed(field: str, text: str) -> bytes:  # a person's name, and a reason that may say who and why
        return master.wrap(text.encode(), exception_aad(grant.library, grant.id, field))

    return {
        "subject": grant.subject,
        "rule": grant.rule,
        "role": grant.role,
        "granted_by": sealed("granted_by", grant.granted_by),
        "reason": sealed("reason", grant.reason),
        "from": grant.from_,
        "until": grant.until,
        "revoked_as_of": None,  # a changed record is a new grant, even of an exception revoked before
    }
