"""What stands beside a batch of subjects, read set-based: one query per side table for the whole batch.

A batch's exceptions, incidents, findings, open data-subject requests, kodex-set legal holds and returned-loan
counts; and one reader with flags saying which of those sides hold anything for it (an explanation then reads
only those). Each function returns the rows as the database gives them; kodex.retention.subjects reads them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BindParameter, Connection, Result, Row, and_, bindparam, exists, func, select

from kodex.store.schema import exceptions, findings, incidents, legal_holds, loans, readers, subject_requests
from kodex.store.sql import one_of

__all__ = [
    "SIDES",
    "exceptions_of",
    "findings_of",
    "holds_of",
    "incidents_of",
    "one_reader",
    "open_requests_of",
    "returned_loan_counts",
]

SIDES = ("grants", "incidents", "findings", "requests", "holds")  # what a reader's load reads beside its row


# Built once: SQLAlchemy keeps a built statement's cache key, so each use only binds values (an explanation loads
# one reader with all of these, a run a batch: building them per call cost more than running them).
_LIBRARY: BindParameter[str] = bindparam("library")


def _has(table: Any, *conditions: Any) -> Any:
    return exists().where(table.c.library == readers.c.library, *conditions)


# One reader with what it takes to know which side queries find anything (most find nothing), and its returned
# loans counted: an explanation costs one statement and one per side that holds something, not seven.
_READER = select(
    readers,
    _has(exceptions, exceptions.c.subject == readers.c.id).label("grants"),
    _has(incidents, incidents.c.reader == readers.c.id).label("incidents"),
    _has(findings, findings.c.subject_type == "reader", findings.c.subject == readers.c.pseudonym).label("findings"),
    _has(
        subject_requests,
        subject_requests.c.reader == readers.c.id,
        subject_requests.c.status == "open",
        subject_requests.c.instruction.is_(None),
    ).label("requests"),
    _has(legal_holds, legal_holds.c.subject_type == "reader", legal_holds.c.subject == readers.c.id).label("holds"),
    select(func.count())
    .where(and_(loans.c.library == readers.c.library, loans.c.reader == readers.c.id, loans.c.returned_at.is_not(None)))
    .scalar_subquery()
    .label("returned"),
).where(readers.c.library == _LIBRARY, readers.c.id == bindparam("id"))
_INCIDENTS = select(incidents).where(incidents.c.library == _LIBRARY, one_of(incidents.c.reader, "ids"))
_GRANTS = select(exceptions).where(exceptions.c.library == _LIBRARY, one_of(exceptions.c.subject, "ids"))
_FINDINGS = select(findings).where(
    findings.c.library == _LIBRARY,
    findings.c.subject_type == bindparam("subject_type"),
    one_of(findings.c.subject, "pseudonyms"),
)
_REQUESTS = select(
    subject_requests.c.reader, subject_requests.c.kind, subject_requests.c.received_on, subject_requests.c.due_on
).where(
    subject_requests.c.library == _LIBRARY,
    one_of(subject_requests.c.reader, "ids"),
    subject_requests.c.status == "open",
    subject_requests.c.instruction.is_(None),  # one waiting for its instruction no longer drives the rules
)
_HOLDS = select(legal_holds).where(
    legal_holds.c.library == _LIBRARY,
    legal_holds.c.subject_type == bindparam("subject_type"),
    one_of(legal_holds.c.subject, "ids"),
)
_RETURNED = (  # called for every batch of a run and every explanation
    select(loans.c.reader, func.count())
    .where(
        loans.c.library == bindparam("library"),
        one_of(loans.c.reader, "ids"),
        loans.c.returned_at.is_not(None),
    )
    .group_by(loans.c.reader)
)


def one_reader(connection: Connection, library: str, reader_id: str) -> Row[Any] | None:
    """The reader's row, with a flag per side in SIDES (does it hold anything?) and `returned` (its returned loans)."""
    return connection.execute(_READER, {"library": library, "id": reader_id}).first()


def incidents_of(connection: Connection, library: str, reader_ids: list[str]) -> Result[Any]:
    return connection.execute(_INCIDENTS, {"library": library, "ids": reader_ids})


def exceptions_of(connection: Connection, library: str, subject_ids: list[str]) -> Result[Any]:
    return connection.execute(_GRANTS, {"library": library, "ids": subject_ids})


def findings_of(connection: Connection, library: str, subject_type: str, pseudonyms: list[str]) -> Result[Any]:
    return connection.execute(_FINDINGS, {"library": library, "subject_type": subject_type, "pseudonyms": pseudonyms})


def open_requests_of(connection: Connection, library: str, reader_ids: list[str]) -> Result[Any]:
    """The readers' open data-subject requests not yet carried out in kodex (none waiting for its instruction to
    the library system): (reader, kind, received_on, due_on)."""
    return connection.execute(_REQUESTS, {"library": library, "ids": reader_ids})


def holds_of(connection: Connection, library: str, subject_type: str, subject_ids: list[str]) -> Result[Any]:
    """The legal holds kept in kodex (set by the dpo) for the subjects."""
    return connection.execute(_HOLDS, {"library": library, "subject_type": subject_type, "ids": subject_ids})


def returned_loan_counts(connection: Connection, library: str, reader_ids: list[str]) -> dict[str, int]:
    """Each reader's returned loans counted (readers with none are absent)."""
    if not reader_ids:
        return {}
    return {reader: count for reader, count in connection.execute(_RETURNED, {"library": library, "ids": reader_ids})}
