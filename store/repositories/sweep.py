"""The subjects a library's run reviews, read batch by batch, and the store's upkeep after a run has rewritten them.

A full run reviews every live subject (readers not anonymised, camera recordings), by primary key. Otherwise the
subjects due: never reviewed (`next_review` null: new or changed) or whose review date has come, as two ranges of
the (library, next_review, key) index. Written as one OR, SQLite read the library's whole index for each batch.
The never-reviewed range is read in the index's own order (next_review, key), the same as by key as next_review
is null throughout: asked for by key alone, PostgreSQL read it from the primary key whenever its statistics still
counted many nulls (an import's, before autovacuum had run), filtering every reader (seconds at 1,000,000 readers).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Connection, Engine, Row, Table, and_, func, select, union_all

from kodex.store.schema import LIVE_READER, camera_recordings, readers

__all__ = ["SUBJECT_TABLES", "Due", "drop_old_pages", "vacuum_subjects"]

SUBJECT_TABLES: dict[str, Table] = {"reader": readers, "camera_recording": camera_recordings}  # by subject type


@dataclass(frozen=True)
class Due:
    """The subjects due in `library`'s run for `day` (every live one when `full`), in batches of `batch_size`."""

    library: str
    day: date
    full: bool
    batch_size: int

    def count(self, connection: Connection) -> int:
        """How many subjects are due, readers and recordings (one count per index range)."""
        return sum(
            connection.execute(select(func.count()).select_from(t).where(condition)).scalar_one()
            for t in (readers, camera_recordings)
            for condition, _ in self.ranges(t)
        )

    def batch(self, connection: Connection, subject_type: str, last: int) -> Sequence[Row[Any]]:
        """The next batch of `subject_type` due after primary key `last`, whole rows by key; empty when done."""
        return connection.execute(self.next_batch(SUBJECT_TABLES[subject_type], last)).all()

    def ranges(self, table: Table) -> list[tuple[Any, tuple[Any, ...]]]:
        """The subjects due, one index range each (any one of them makes a subject due), with the order to read it."""
        key = _key(table)
        live = table.c.library == self.library
        if table is readers:
            live = and_(live, LIVE_READER)  # as ix_readers_review says it, so that index serves the ranges
        if self.full:
            return [(live, (key,))]
        return [
            (and_(live, table.c.next_review.is_(None)), (table.c.next_review, key)),
            (and_(live, table.c.next_review <= self.day), (key,)),
        ]

    def next_batch(self, table: Table, last: int) -> Any:
        """The statement for the next batch after `last`, by primary key: each index range read apart, then merged."""
        key = _key(table)
        pages = [
            select(table).where(c, key > last).order_by(*order).limit(self.batch_size)
            for c, order in self.ranges(table)
        ]
        if len(pages) == 1:
            return pages[0]
        merged = union_all(*(select(page.subquery()) for page in pages)).subquery()
        return select(merged).order_by(merged.c[key.name]).limit(self.batch_size)


def vacuum_subjects(engine: Engine) -> None:
    """After a full sweep on PostgreSQL: VACUUM (ANALYZE) the subjects' tables, as autovacuum would later.

    The sweep rewrote every live subject's row. Until vacuumed, the old row versions stay on disk (an anonymised
    reader's wrapped key among them: SQLite's pages are dropped at the end of a run for the same reason) and in
    the review index, where the next night's never-reviewed range read through a million dead entries; until
    analysed, PostgreSQL believed most readers never reviewed. 5.0 s at 1,000,000 readers (of a 520 s sweep);
    the next night after it 1.29 s instead of 4.83 s.
    """
    with engine.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT")  # VACUUM runs outside a transaction
        connection.exec_driver_sql(f"VACUUM (ANALYZE) {readers.name}, {camera_recordings.name}")


def drop_old_pages(engine: Engine) -> None:
    """SQLite keeps old page images in its write-ahead log: fold it back and empty it, so a destroyed key is gone.

    Freed pages of the database file are zeroed too (secure_delete, store.database).
    """
    with engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


def _key(table: Table) -> Any:
    return table.c.rid if table is readers else table.c.cid
