"""What the tables of imported records share: rows kept by library and record id, with the keyed digest of the
record as imported (an import compares it), most named by a pseudonym; readers and camera recordings are also
reviewed on a day (`next_review`), so a change makes them due at the next run.

`RECORDS` holds one per record type of the contract; `SUBJECTS` the two that rules decide on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Row, Table, bindparam, select, tuple_, update

from kodex.store.schema import (
    camera_recordings,
    erased_loans,
    exceptions,
    incidents,
    loans,
    purged_recordings,
    readers,
)

__all__ = ["RECORDS", "SUBJECTS", "Key", "Records", "Subjects"]

Key = tuple[str, str]  # (library, record id)


class Records:
    """One table of imported records; `tombstones` lists those gone (purged, erased) that no import takes in again."""

    def __init__(self, table: Table, tombstones: Table | None = None) -> None:
        self.table, self.tombstones = table, tombstones
        self._change = update(table).where(table.c.library == bindparam("b_library"), table.c.id == bindparam("b_id"))

    def stored(self, connection: Connection, keys: Sequence[Key], *also: str) -> dict[Key, Row[Any]]:
        """The stored rows of `keys` (library, id, digest and the columns `also` names), by key."""
        if not keys:
            return {}
        table = self.table
        rows = connection.execute(
            select(table.c.library, table.c.id, table.c.digest, *(table.c[name] for name in also)).where(
                tuple_(table.c.library, table.c.id).in_(list(keys))
            )
        )
        return {(row.library, row.id): row for row in rows}

    def gone(self, connection: Connection, keys: Sequence[Key]) -> set[Key]:
        """Of `keys`, those purged or erased before (none for a table without tombstones)."""
        if self.tombstones is None:
            return set()
        tombstones = self.tombstones
        query = select(tombstones.c.library, tombstones.c.id).where(
            tuple_(tombstones.c.library, tombstones.c.id).in_(list(keys))
        )
        return {(row.library, row.id) for row in connection.execute(query)}

    def add(self, connection: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        connection.execute(self.table.insert(), list(rows))

    def change(self, connection: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Write each row's values over the stored row its `library` and `id` name (one statement, many rows)."""
        connection.execute(
            self._change,
            [
                {"b_library": row["library"], "b_id": row["id"], **{k: v for k, v in row.items() if k not in _KEY}}
                for row in rows
            ],
        )

    def pseudonyms(self, connection: Connection, library: str, ids: Iterable[str]) -> dict[str, str]:
        """The pseudonyms (what the log names them by) of the library's records `ids` stored, by id."""
        table = self.table
        query = select(table.c.id, table.c.pseudonym).where(table.c.library == library, table.c.id.in_(list(ids)))
        return {row.id: row.pseudonym for row in connection.execute(query)}


class Subjects(Records):
    """Records the rules decide on (readers, camera recordings): reviewed again when something about them changes."""

    def pseudonym(self, connection: Connection, library: str, subject: str) -> str | None:
        table = self.table
        found = connection.execute(
            select(table.c.pseudonym).where(table.c.library == library, table.c.id == subject)
        ).first()
        return None if found is None else str(found.pseudonym)

    def review_at_next_run(self, connection: Connection, library: str, subject: str) -> bool:
        """Make the subject due at the next run, whatever its review date was; False when the library holds none."""
        table = self.table
        return bool(
            connection.execute(
                update(table).where(table.c.library == library, table.c.id == subject).values(next_review=None)
            ).rowcount
        )

    def review_all_at_next_run(self, connection: Connection, library: str, subjects: Iterable[str]) -> None:
        table = self.table
        connection.execute(
            update(table).where(table.c.library == library, table.c.id.in_(list(subjects))).values(next_review=None)
        )


_KEY = frozenset({"library", "id"})

SUBJECTS: dict[str, Subjects] = {
    "reader": Subjects(readers),
    "camera_recording": Subjects(camera_recordings, tombstones=purged_recordings),
}
RECORDS: dict[str, Records] = {
    "reader": SUBJECTS["reader"],
    "loan": Records(loans, tombstones=erased_loans),
    "camera_recording": SUBJECTS["camera_recording"],
    "incident": Records(incidents),
    "exception": Records(exceptions),
}
