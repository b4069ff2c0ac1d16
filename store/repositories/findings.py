"""Findings as stored: what a run reported or proposed about a subject (named by its pseudonym) for people to act on."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Row, select, update

from kodex.store.schema import findings, readers

__all__ = ["about", "close_proposal", "open_about", "proposal", "proposals"]


def about(connection: Connection, library: str, subject_type: str, pseudonym: str) -> list[Row[Any]]:
    """Every finding about the subject, closed ones too."""
    query = select(findings).where(
        findings.c.library == library, findings.c.subject_type == subject_type, findings.c.subject == pseudonym
    )
    return list(connection.execute(query).all())


def open_about(connection: Connection, library: str, subject_type: str, pseudonym: str) -> list[Row[Any]]:
    query = select(findings).where(
        findings.c.library == library,
        findings.c.subject_type == subject_type,
        findings.c.subject == pseudonym,
        findings.c.status == "open",
    )
    return list(connection.execute(query).all())


def proposals(connection: Connection, library: str, status: str | None) -> list[Row[Any]]:
    """The library's proposals (of one status, if given) in the order they were opened, each with its reader's
    record id as `reader_id` (None once anonymised)."""
    query = (
        select(findings, readers.c.id.label("reader_id"))
        .join(readers, readers.c.pseudonym == findings.c.subject, isouter=True)
        .where(findings.c.library == library, findings.c.effect == "propose")
        .order_by(findings.c.fid)
    )
    if status is not None:
        query = query.where(findings.c.status == status)
    return list(connection.execute(query).all())


def proposal(connection: Connection, library: str, proposal_id: str) -> Row[Any] | None:
    """The proposal the decision `proposal_id` opened, or None."""
    query = select(findings).where(
        findings.c.library == library, findings.c.effect == "propose", findings.c.decision_id == proposal_id
    )
    return connection.execute(query).first()


def close_proposal(connection: Connection, fid: int, *, status: str, closed_as_of: str, reason: bytes) -> None:
    """Record the proposal (its row key) decided: accepted or rejected, with the reason wrapped by the master key."""
    connection.execute(
        update(findings).where(findings.c.fid == fid).values(status=status, closed_as_of=closed_as_of, reason=reason)
    )
