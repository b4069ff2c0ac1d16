"""Exceptions to a rule as stored (their grantor and reason wrapped by the master key: store.codec unwraps them)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Row, select, update

from kodex.store.schema import exceptions

__all__ = ["about", "exists", "find", "of_library", "revoke"]


def find(connection: Connection, library: str, exception_id: str) -> Row[Any] | None:
    query = select(exceptions).where(exceptions.c.library == library, exceptions.c.id == exception_id)
    return connection.execute(query).first()


def exists(connection: Connection, library: str, exception_id: str) -> bool:
    query = select(exceptions.c.eid).where(exceptions.c.library == library, exceptions.c.id == exception_id)
    return connection.execute(query).first() is not None


def of_library(connection: Connection, library: str, exception_id: str | None = None) -> list[Row[Any]]:
    """The library's exceptions (revoked ones too), oldest first; with `exception_id`, that one only."""
    query = select(exceptions).where(exceptions.c.library == library).order_by(exceptions.c.eid)
    if exception_id is not None:
        query = query.where(exceptions.c.id == exception_id)
    return list(connection.execute(query).all())


def about(connection: Connection, library: str, subject: str) -> list[Row[Any]]:
    """The exceptions granted about one subject (a reader's or camera recording's id), oldest first."""
    where = (exceptions.c.library == library, exceptions.c.subject == subject)
    return list(connection.execute(select(exceptions).where(*where).order_by(exceptions.c.eid)).all())


def revoke(connection: Connection, eid: int, as_of: str) -> None:
    """Mark the exception (its row key) revoked as of `as_of`; the row stays."""
    connection.execute(update(exceptions).where(exceptions.c.eid == eid).values(revoked_as_of=as_of))
