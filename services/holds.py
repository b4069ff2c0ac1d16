"""Legal holds the dpo sets in kodex: data that must not be erased (e.g. handed to police, čl. 9 odst. 6 SVK PK).

A hold kept here stands beside any hold the library's records carry and
outlasts every import; the longer of the two applies (retention.subjects).
Its reason is wrapped by the master key. Setting or releasing a hold makes
the subject due for review at the next run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

from kodex.errors import SubjectNotFound
from kodex.retention.subjects import hold_aad
from kodex.store.crypto import MasterKey
from kodex.store.database import Connection, Engine
from kodex.store.repositories import holds
from kodex.store.repositories.records import SUBJECTS

__all__ = ["Hold", "release_hold", "set_hold"]


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
    moment = datetime.now(UTC)
    sealed = master.wrap(reason.encode(), hold_aad(library, subject_type, subject))
    with engine.begin() as connection:
        _review(connection, subject_type, library, subject)
        holds.put(connection, library, subject_type, subject, reason=sealed, until=until, set_at=moment)
    return Hold(library, subject_type, subject, until, moment)


def release_hold(engine: Engine, library: str, subject_type: str, subject: str) -> None:
    """Release kodex's hold (a hold the records carry stays until the records change)."""
    with engine.begin() as connection:
        _review(connection, subject_type, library, subject)
        removed = holds.remove(connection, library, subject_type, subject)
    if not removed:
        raise SubjectNotFound(f"kodex keeps no legal hold on this {subject_type.replace('_', ' ')}")


def _review(connection: Connection, subject_type: str, library: str, subject: str) -> None:
    if not SUBJECTS[subject_type].review_at_next_run(connection, library, subject):
        raise SubjectNotFound(f"library {library!r} holds no {subject_type.replace('_', ' ')} with this id")
