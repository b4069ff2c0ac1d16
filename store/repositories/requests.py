"""Data-subject requests as stored: a reader's open ones, a library's, those falling due."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import Connection, Row, select

from kodex.store.schema import subject_requests

__all__ = ["add", "due_by", "of_library", "open_of_reader", "open_one"]


def open_of_reader(connection: Connection, library: str, reader_id: str) -> list[Row[Any]]:
    query = select(subject_requests).where(
        subject_requests.c.library == library,
        subject_requests.c.reader == reader_id,
        subject_requests.c.status == "open",
    )
    return list(connection.execute(query).all())


def open_one(connection: Connection, library: str, reader_id: str, kind: str) -> Row[Any] | None:
    """The reader's open request of this kind (there is one at most), or None."""
    query = select(subject_requests).where(
        subject_requests.c.library == library,
        subject_requests.c.reader == reader_id,
        subject_requests.c.kind == kind,
        subject_requests.c.status == "open",
    )
    return connection.execute(query).first()


def add(
    connection: Connection,
    request_id: str,
    library: str,
    reader_id: str,
    kind: str,
    *,
    received_on: date,
    due_on: date,
) -> None:
    """Record an open request."""
    connection.execute(
        subject_requests.insert().values(
            id=request_id, library=library, reader=reader_id, kind=kind, received_on=received_on, due_on=due_on,
            status="open",
        )
    )  # fmt: skip


def of_library(connection: Connection, library: str, status: str | None = None) -> list[Row[Any]]:
    """The library's requests (of one status, if given), by the day they are due."""
    query = select(subject_requests).where(subject_requests.c.library == library)
    if status is not None:
        query = query.where(subject_requests.c.status == status)
    return list(connection.execute(query.order_by(subject_requests.c.due_on)).all())


def due_by(connection: Connection, library: str, day: date) -> list[Row[Any]]:
    """The library's open requests due on `day` or before (overdue ones too), the most urgent first."""
    query = (
        select(subject_requests)
        .where(
            subject_requests.c.library == library,
            subject_requests.c.status == "open",
            subject_requests.c.due_on <= day,
        )
        .order_by(subject_requests.c.due_on, subject_requests.c.id)
    )
    return list(connection.execute(query).all())
