"""Legal holds the dpo keeps in kodex, one per subject (its reason wrapped by the master key)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Row, delete, select, update

from kodex.store.schema import legal_holds

__all__ = ["find", "put", "remove"]


def find(connection: Connection, library: str, subject_type: str, subject: str) -> Row[Any] | None:
    """The hold's `until` (None: until released), or None when kodex keeps no hold on the subject."""
    return connection.execute(select(legal_holds.c.until).where(*_on(library, subject_type, subject))).first()


def put(
    connection: Connection,
    library: str,
    subject_type: str,
    subject: str,
    *,
    reason: bytes,
    until: date | None,
    set_at: datetime,
) -> None:
    """Keep a hold on the subject, replacing the one kept before."""
    where = _on(library, subject_type, subject)
    if connection.execute(select(legal_holds.c.hid).where(*where)).first() is None:
        connection.execute(
            legal_holds.insert().values(
                library=library, subject_type=subject_type, subject=subject, reason=reason, until=until, set_at=set_at
            )
        )
    else:
        connection.execute(update(legal_holds).where(*where).values(reason=reason, until=until, set_at=set_at))


def remove(connection: Connection, library: str, subject_type: str, subject: str) -> bool:
    """Release the hold; False when kodex kept none."""
    return bool(connection.execute(delete(legal_holds).where(*_on(library, subject_type, subject))).rowcount)


def _on(library: str, subject_type: str, subject: str) -> tuple[ColumnElement[bool], ...]:
    return (
        legal_holds.c.library == library,
        legal_holds.c.subject_type == subject_type,
        legal_holds.c.subject == subject,
    )
