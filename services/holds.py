"""Legal holds the dpo sets in kodex: data that must not be erased (e.g. handed to police, čl. 9 odst. 6 SVK PK).

A hold kept here stands beside any hold the library's records carry and
outlasts every import; the longer of the two applies (retention.subjects).
Its reason is wrapped by the master key. Setting or releasing a hold makes
the subject due for review at the next run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlalchemy import Connection, Engine, Table, delete, select, update

from kodex.errors import SubjectNotFound
from kodex.retention.subjects import hold_aad
from kodex.store.crypto import MasterKey
from kodex.store.schema import camera_recordings, legal_holds, readers

__all__ = ["Hold", "release_hold", "set_hold"]

_TABLES = {"reader": readers, "camera_recording": camera_recordings}


@dataclass(frozen=True)
class Hold:
    library: str
    subject_type: str
    subject: str
    until: date | None
    set_at: datetime


def set_hold(
    engine: Engine, master: MasterKey, library: str, subject_type: str, subject: str, reason: str, until: date | None
) -> Hold:
    """Put (or replace) kodex's hold on a reader or camera recording."""
    table = _TABLES[subject_type]
    moment = datetime.now(UTC)
    sealed = master.wrap(reason.encode(), hold_aad(library, subject_type, subject))
    with engine.begin() as connection:
        _review(connection, table, library, subject)
        where = (
            legal_holds.c.library == library,
            legal_holds.c.subject_type == subject_type,
            legal_holds.c.subject == subject,
        )
        if connection.execute(select(legal_holds.c.hid).where(*where)).first() is None:
            connection.execute(
                legal_holds.insert().values(
                    library=library, subject_type=subject_type, subject=subject, reason=sealed, until=until,
                    set_at=moment,
                )
            )  # fmt: skip
        else:
            connection.execute(update(legal_holds).where(*where).values(reason=sealed, until=until, set_at=moment))
    return Hold(library, subject_type, subject, until, moment)


def release_hold(engine: Engine, library: str, subject_type: str, subject: str) -> None:
    """Release kodex's hold (a hold the records carry stays until the records change)."""
    table = _TABLES[subject_type]
    with engine.begin() as connection:
        _review(connection, table, library, subject)
        removed = connection.execute(
            delete(legal_holds).where(
                legal_holds.c.library == library,
                legal_holds.c.subject_type == subject_type,
                legal_holds.c.subject == subject,
            )
        ).rowcount
    if not removed:
        raise SubjectNotFound(f"kodex keeps no legal hold on this {subject_type.replace('_', ' ')}")


def _review(connection: Connection, table: Table, library: str, subject: str) -> None:
    found = connection.execute(
        update(table).where(table.c.library == library, table.c.id == subject).values(next_review=None)
    ).rowcount
    if not found:
        raise SubjectNotFound(f"library {library!r} holds no {table.name.rstrip('s').replace('_', ' ')} with this id")
