"""Camera recordings as stored: looked up by library and record id, paged in key order."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Row, select, tuple_

from kodex.store.repositories.records import Key
from kodex.store.schema import camera_recordings

__all__ = ["among", "exists", "page"]

_CHUNK = 500  # keys looked up per query


def exists(connection: Connection, library: str, recording_id: str) -> bool:
    query = select(camera_recordings.c.id).where(
        camera_recordings.c.library == library, camera_recordings.c.id == recording_id
    )
    return connection.execute(query).first() is not None


def among(connection: Connection, keys: Sequence[Key]) -> set[Key]:
    """Of `keys` (library, id), those of a stored camera recording."""
    stored: set[Key] = set()
    for start in range(0, len(keys), _CHUNK):
        query = select(camera_recordings.c.library, camera_recordings.c.id).where(
            tuple_(camera_recordings.c.library, camera_recordings.c.id).in_(keys[start : start + _CHUNK])
        )
        stored |= {(row.library, row.id) for row in connection.execute(query)}
    return stored


def page(connection: Connection, library: str, after: int, limit: int) -> list[Row[Any]]:
    """The library's camera recordings in key order (`cid`) after `after`: at most `limit`."""
    query = (
        select(camera_recordings)
        .where(camera_recordings.c.library == library, camera_recordings.c.cid > after)
        .order_by(camera_recordings.c.cid)
        .limit(limit)
    )
    return list(connection.execute(query).all())
