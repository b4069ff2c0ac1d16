"""Loans as stored: a reader's, in the order they were taken in."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Row, select

from kodex.store.schema import loans

__all__ = ["of_reader"]


def of_reader(connection: Connection, library: str, reader_id: str) -> list[Row[Any]]:
    query = select(loans).where(loans.c.library == library, loans.c.reader == reader_id).order_by(loans.c.lid)
    return list(connection.execute(query).all())
