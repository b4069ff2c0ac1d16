"""Incidents as stored: a reader's, in the order they were taken in."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Row, select

from kodex.store.schema import incidents

__all__ = ["of_reader"]


def of_reader(connection: Connection, library: str, reader_id: str) -> list[Row[Any]]:
    where = (incidents.c.library == library, incidents.c.reader == reader_id)
    return list(connection.execute(select(incidents).where(*where).order_by(incidents.c.iid)).all())
