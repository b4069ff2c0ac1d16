"""Readers as stored: found by library and record id (or by pseudonym), paged in key order."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, Row, select, tuple_

from kodex.store.repositories.records import Key
from kodex.store.schema import readers

__all__ = ["anonymised_among", "by_pseudonym", "find", "is_live", "page_of_live", "state_of"]


def find(connection: Connection, library: str, reader_id: str) -> Row[Any] | None:
    return connection.execute(select(readers).where(readers.c.library == library, readers.c.id == reader_id)).first()


def by_pseudonym(connection: Connection, pseudonym: str) -> Row[Any] | None:
    return connection.execute(select(readers).where(readers.c.pseudonym == pseudonym)).first()


def state_of(connection: Connection, library: str, reader_id: str) -> str | None:
    """active, lapsed or anonymised; None when the library holds no such reader."""
    row = connection.execute(
        select(readers.c.state).where(readers.c.library == library, readers.c.id == reader_id)
    ).first()
    return None if row is None else str(row.state)


def is_live(connection: Connection, library: str, reader_id: str) -> bool:
    """The library holds the reader, not anonymised."""
    query = select(readers.c.id).where(
        readers.c.library == library, readers.c.id == reader_id, readers.c.state != "anonymised"
    )
    return connection.execute(query).first() is not None


def anonymised_among(connection: Connection, keys: Iterable[Key]) -> set[Key]:
    """Of the readers `keys` names, those kodex has anonymised."""
    query = select(readers.c.library, readers.c.id).where(
        tuple_(readers.c.library, readers.c.id).in_(list(keys)), readers.c.state == "anonymised"
    )
    return {(row.library, row.id) for row in connection.execute(query)}


def page_of_live(connection: Connection, library: str, after: int, limit: int) -> list[Row[Any]]:
    """The library's readers not anonymised, in key order (`rid`) after `after`: at most `limit`."""
    query = (
        select(readers)
        .where((readers.c.library == library) & (readers.c.state != "anonymised"), readers.c.rid > after)
        .order_by(readers.c.rid)
        .limit(limit)
    )
    return list(connection.execute(query).all())
