"""The decision log in the store: appending, signing checkpoints, proving inclusion, reading it back.

Each library has its own log: a Merkle tree (RFC 9162) whose leaves are the
library's entries (audit.entries) in the order appended, index 0 first. Rows
of `decision_log` are never updated or deleted (on PostgreSQL and SQLite a
trigger refuses it; `audit.verify` finds it anyway if someone goes around
the trigger).

Appending takes the library's row in `log_heads` first, in the caller's
transaction: that row lock (PostgreSQL) or the write lock (SQLite) orders
appenders, so indexes are dense and an entry commits together with the
action it records, or neither does. The head keeps the tree's size and right
edge (audit.merkle.Frontier), so the root after every append costs
O(log n); the roots of perfect subtrees of 2^4 = 16 leaves and more are kept in
`log_subtrees`, so an inclusion proof reads at most about 30 leaf
hashes, never the whole log.

A checkpoint signs (origin, size, root, time) with the active Ed25519 key
(audit.keys). Every run ends with one; `kodex audit checkpoint` makes one on
demand.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import (
    Connection,
    Engine,
    Select,
    and_,
    bindparam,
    false,
    func,
    or_,
    select,
    tuple_,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from kodex.audit.entries import canonical
from kodex.audit.keys import SigningKey, checkpoint_note, signing_key
from kodex.audit.merkle import Frontier, fold_parts, inclusion_ranges, leaf_hash, perfect_parts, root_hash
from kodex.audit.note import raw_key, signed_note
from kodex.errors import NotInLog
from kodex.store.crypto import MasterKey
from kodex.store.database import reading
from kodex.store.schema import decision_log, log_checkpoints, log_heads, log_subtrees

__all__ = [
    "CACHED_HEIGHT",
    "DAY_BY_DAY_LIMIT",
    "PROOF_FORMAT",
    "Checkpoint",
    "LogFilter",
    "append",
    "checkpoint",
    "entries_text",
    "head",
    "latest_checkpoint",
    "origin_of",
    "prove",
    "query",
    "range_roots",
    "subject_entries",
    "subtree_root",
]

CACHED_HEIGHT = 4  # perfect subtrees of 16 leaves and more are kept: a proof reads at most ~30 leaf hashes
PROOF_FORMAT = "kodex-inclusion-proof/1"


@dataclass(frozen=True)
class Checkpoint:
    library: str
    origin: str
    size: int
    root: bytes
    time: str
    key_id: str
    signature: bytes

    def note(self) -> bytes:
        """The text signed: the body of the checkpoint's signed note (c2sp.org/tlog-checkpoint)."""
        return checkpoint_note(self.origin, self.size, self.root, self.time)

    def signed_note(self, public: Ed25519PublicKey) -> str:
        """The checkpoint as a c2sp.org/signed-note, signed by `public`'s key under the log's origin as key name."""
        return signed_note(self.note(), self.origin, raw_key(public), self.signature)

    def as_json(self) -> dict[str, Any]:
        return {
            "origin": self.origin,
            "size": self.size,
            "root": base64.b64encode(self.root).decode(),
            "time": self.time,
            "key_id": self.key_id,
            "signature": base64.b64encode(self.signature).decode(),
        }


@dataclass(frozen=True)
class LogFilter:
    """What an auditor selects entries by; None selects everything."""

    library: str | None = None
    kind: str | None = None
    rule: str | None = None
    action: str | None = None
    outcome: str | None = None
    subject: str | None = None
    run: str | None = None
    day_from: date | None = None
    day_to: date | None = None

    def where(self, statement: Select[Any]) -> Select[Any]:
        c = decision_log.c
        for column, value in (
            (c.library, self.library),
            (c.kind, self.kind),
            (c.rule, self.rule),
            (c.action, self.action),
            (c.outcome, self.outcome),
            (c.subject, self.subject),
            (c.run_id, self.run),
        ):
            if value is not None:
                statement = statement.where(column == value)
        if self.day_from is not None:
            statement = statement.where(c.day >= self.day_from)
        if self.day_to is not None:
            statement = statement.where(c.day <= self.day_to)
        return statement


def append(connection: Connection, library: str, day: date, entries: Sequence[Mapping[str, Any]]) -> Frontier:
    """Append `entries` (audit.entries dicts) to `library`'s log in the caller's transaction; the new head."""
    frontier = _lock_head(connection, library)
    if not entries:
        return frontier
    rows, nodes = [], []
    for entry in entries:
        text = canonical(entry)
        hashed = leaf_hash(text)
        rows.append(
            {
                "library": library,
                "idx": frontier.size,
                "id": entry["id"],
                "kind": entry["kind"],
                "run_id": entry["run"],
                "as_of": entry["as_of"],
                "day": day,
                "subject_type": entry["subject_type"],
                "subject": entry["subject"],
                "rule": entry["rule"],
                "action": entry["action"],
                "outcome": entry["outcome"],
                "entry": text.decode(),
                "leaf_hash": hashed,
            }
        )
        for height, position, node in frontier.append(hashed):
            if height >= CACHED_HEIGHT:
                nodes.append({"library": library, "height": height, "position": position, "hash": node})
    _insert_entries(connection, rows)
    if nodes:
        connection.execute(log_subtrees.insert(), nodes)
    connection.execute(
        update(log_heads).where(log_heads.c.library == library).values(size=frontier.size, frontier=frontier.to_bytes())
    )
    return frontier


_ENTRY_COLUMNS = (
    "library",
    "idx",
    "id",
    "kind",
    "run_id",
    "as_of",
    "day",
    "subject_type",
    "subject",
    "rule",
    "action",
    "outcome",
    "entry",
    "leaf_hash",
)
_COPY_ENTRIES = f"COPY {decision_log.name} ({', '.join(_ENTRY_COLUMNS)}) FROM STDIN"


def _insert_entries(connection: Connection, rows: list[dict[str, Any]]) -> None:
    """The rows into decision_log, in the caller's transaction: by COPY on PostgreSQL (a batch of a run is one
    stream instead of a round of messages per row), an executemany elsewhere."""
    if connection.dialect.name != "postgresql":
        connection.execute(decision_log.insert(), rows)
        return
    cursor = connection.connection.cursor()  # the driver's cursor on the same connection: the same transaction
    try:
        with cursor.copy(_COPY_ENTRIES) as copy:
            for row in rows:
                copy.write_row([row[name] for name in _ENTRY_COLUMNS])
    finally:
        cursor.close()


def _lock_head(connection: Connection, library: str) -> Frontier:
    insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
    connection.execute(
        insert(log_heads)
        .values(library=library, size=0, frontier=b"")
        .on_conflict_do_nothing(index_elements=[log_heads.c.library])
    )
    # a write first: the row lock on PostgreSQL, the database write lock on SQLite, held until commit
    connection.execute(update(log_heads).where(log_heads.c.library == library).values(size=log_heads.c.size))
    row = connection.execute(select(log_heads.c.size, log_heads.c.frontier).where(log_heads.c.library == library)).one()
    return Frontier.from_bytes(row.size, row.frontier)


def head(connection: Connection, library: str) -> Frontier:
    row = connection.execute(
        select(log_heads.c.size, log_heads.c.frontier).where(log_heads.c.library == library)
    ).first()
    return Frontier() if row is None else Frontier.from_bytes(row.size, row.frontier)


def origin_of(library: str) -> str:
    return f"kodex/{library}"


def checkpoint(connection: Connection, library: str, master: MasterKey, time: str) -> Checkpoint:
    """Sign the library's tree as it is in this transaction (appending is locked out until it commits)."""
    frontier = _lock_head(connection, library)
    key = signing_key(connection, master)
    return _sign(connection, library, frontier, key, time)


def _sign(connection: Connection, library: str, frontier: Frontier, key: SigningKey, time: str) -> Checkpoint:
    origin = origin_of(library)
    root = frontier.root()
    note = checkpoint_note(origin, frontier.size, root, time)
    signed = Checkpoint(library, origin, frontier.size, root, time, key.key_id, key.sign(note))
    connection.execute(
        log_checkpoints.insert().values(
            library=library,
            origin=origin,
            size=signed.size,
            root=root,
            time=time,
            key_id=key.key_id,
            signature=signed.signature,
        )
    )
    return signed


def checkpoints(connection: Connection, library: str) -> list[Checkpoint]:
    rows = connection.execute(
        select(log_checkpoints).where(log_checkpoints.c.library == library).order_by(log_checkpoints.c.id)
    )
    return [_checkpoint(row) for row in rows]


def latest_checkpoint(connection: Connection, library: str) -> Checkpoint:
    """The library's newest signed checkpoint; NotInLog when none is signed yet."""
    row = connection.execute(
        select(log_checkpoints)
        .where(log_checkpoints.c.library == library)
        .order_by(log_checkpoints.c.id.desc())
        .limit(1)
    ).first()
    if row is None:
        raise NotInLog(f"no checkpoint of {library} is signed yet; run `kodex audit checkpoint --library {library}`")
    return _checkpoint(row)


def _checkpoint(row: Any) -> Checkpoint:
    return Checkpoint(row.library, row.origin, row.size, bytes(row.root), row.time, row.key_id, bytes(row.signature))


# -- proving -----------------------------------------------------------------------------------------


def prove(engine: Engine, entry_id: str, library: str | None = None) -> dict[str, Any]:
    """A self-contained inclusion proof of one entry against the newest checkpoint that covers it.

    With `library`, an entry of another library is not found (and nothing says it exists elsewhere).
    """
    statement = select(decision_log.c.library, decision_log.c.idx, decision_log.c.entry).where(
        decision_log.c.id == entry_id
    )
    if library is not None:
        statement = statement.where(decision_log.c.library == library)
    with engine.connect() as connection:
        row = connection.execute(statement).first()
        if row is None:
            where = f" of {library}" if library is not None else ""
            raise NotInLog(f"no entry {entry_id} in the decision log{where}; `kodex decisions` lists entry ids")
        newest = connection.execute(
            select(log_checkpoints)
            .where(log_checkpoints.c.library == row.library, log_checkpoints.c.size > row.idx)
            .order_by(log_checkpoints.c.id.desc())
            .limit(1)
        ).first()
        if newest is None:
            raise NotInLog(
                f"entry {entry_id} is newer than the last signed checkpoint of {row.library}; "
                f"run `kodex audit checkpoint --library {row.library}` and ask again"
            )
        signed = _checkpoint(newest)
        path = range_roots(connection, row.library, inclusion_ranges(row.idx, signed.size))
    return {
        "format": PROOF_FORMAT,
        "library": row.library,
        "entry": json.loads(row.entry),
        "leaf_index": row.idx,
        "tree_size": signed.size,
        "inclusion_proof": [base64.b64encode(h).decode() for h in path],
        "checkpoint": signed.as_json(),
    }


def subtree_root(connection: Connection, library: str, lo: int, hi: int) -> bytes:
    """The root of leaves lo..hi-1 (a range a proof asks for)."""
    return range_roots(connection, library, [(lo, hi)])[0]


def range_roots(connection: Connection, library: str, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
    """The roots of the leaf ranges a proof asks for, in a few queries whatever their number.

    Each range is perfect subtrees (audit.merkle.perfect_parts): those of 16 leaves and more are read from
    the cache, the rest (a range's tail, inside one block of 16 leaves) hashed from their leaves.
    """
    parts = [perfect_parts(lo, hi) for lo, hi in ranges]
    cached = sorted({part for each in parts for part in each if part[0] >= CACHED_HEIGHT})
    roots: dict[tuple[int, int], bytes] = {}
    if cached:
        for node in connection.execute(
            select(log_subtrees.c.height, log_subtrees.c.position, log_subtrees.c.hash).where(
                _subtree_keys(connection, library, cached)
            )
        ):
            roots[(node.height, node.position)] = bytes(node.hash)
    spans = sorted(
        {(p << h, (p + 1) << h) for each in parts for h, p in each if h < CACHED_HEIGHT}
    )  # leaf spans of fewer than 16 leaves
    if spans:
        leaves: dict[int, bytes] = {}
        for lo, hi in _merged(spans):  # one index range scan each (an OR of ranges is a table scan on SQLite)
            for row in connection.execute(
                select(decision_log.c.idx, decision_log.c.leaf_hash).where(
                    decision_log.c.library == library, decision_log.c.idx >= lo, decision_log.c.idx < hi
                )
            ):
                leaves[row.idx] = bytes(row.leaf_hash)
        for lo, hi in spans:
            if all(i in leaves for i in range(lo, hi)):
                roots[(((hi - lo).bit_length() - 1), lo >> ((hi - lo).bit_length() - 1))] = root_hash(
                    [leaves[i] for i in range(lo, hi)]
                )
    result = []
    for each in parts:
        missing = [part for part in each if part not in roots]
        if missing:
            height, position = missing[0]
            first = position << height
            raise NotInLog(
                f"the log of {library} lacks the subtree of entries {first}–{first + (1 << height) - 1} "
                "(or those entries); run `kodex audit verify`"
            )
        result.append(fold_parts([roots[part] for part in each]))
    return result


def _subtree_keys(connection: Connection, library: str, keys: Sequence[tuple[int, int]]) -> Any:
    """Primary-key lookups of these subtrees, in the form each database answers from its index."""
    if connection.dialect.name == "postgresql":  # a row-value IN: one statement shape, compiled once
        return and_(log_subtrees.c.library == library, tuple_(log_subtrees.c.height, log_subtrees.c.position).in_(keys))
    # SQLite scans the library's rows for a row-value IN, or for an OR that leaves the library outside its
    # branches: an OR of whole keys is a search per key
    c = log_subtrees.c
    return or_(*(and_(c.library == library, c.height == h, c.position == p) for h, p in keys))


def _merged(spans: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for lo, hi in spans:
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
        else:
            merged.append((lo, hi))
    return merged


# -- reading -----------------------------------------------------------------------------------------


LAST_SEQ = 2**31 - 1  # decision_log.seq is an INTEGER: 32 bits on PostgreSQL


def query(engine: Engine, where: LogFilter, *, after: int = 0, limit: int = 100) -> list[tuple[int, dict[str, Any]]]:
    """One page of entries (seq, entry) in log order after `after` (keyset pagination: pass the last seq back)."""
    return [(seq, json.loads(text)) for seq, text in query_text(engine, where, after=after, limit=limit)]


def query_text(engine: Engine, where: LogFilter, *, after: int = 0, limit: int = 100) -> list[tuple[int, str]]:
    """As `query`, each entry as its canonical JSON text (already JSON: a server can pass it on as it is)."""
    if after >= LAST_SEQ:  # no entry lies past the column's range (and PostgreSQL refuses a larger integer)
        return []
    with reading(engine) as connection:
        days = _days(connection, where)
        if days is not None and len(days) <= DAY_BY_DAY_LIMIT:
            statement = _day_by_day(where, days, after, limit)
        else:
            statement = where.where(select(decision_log.c.seq, decision_log.c.entry)).where(decision_log.c.seq > after)
            if days is not None:
                span = _day_span(connection, where.library, days)
                if span is None:  # no entry on any of those days
                    return []
                statement = statement.where(decision_log.c.seq.between(max(after + 1, span[0]), span[1]))
            statement = statement.order_by(decision_log.c.seq).limit(limit)
        rows = connection.execute(statement).all()
    return [(row.seq, row.entry) for row in rows]


DAY_BY_DAY_LIMIT = 31  # a date range of up to this many days is read day by day
DAY_SPAN_LIMIT = 400  # up to this many, each day's first and last position bound the scan; a longer range is scanned

_FIRST_DAY = select(func.min(decision_log.c.day)).where(decision_log.c.library == bindparam("library"))
_LAST_DAY = select(func.max(decision_log.c.day)).where(decision_log.c.library == bindparam("library"))
_DAY_SEQS = select(func.min(decision_log.c.seq), func.max(decision_log.c.seq)).where(
    decision_log.c.library == bindparam("library"), decision_log.c.day == bindparam("day")
)


def _days(connection: Connection, where: LogFilter) -> list[date] | None:
    """The days of the filter's date range in one library (an open end: its first or last day in the log).

    None without a library or a date, or for a range longer than DAY_SPAN_LIMIT days: such a query scans in log
    order. Log order follows the days only roughly (a run may be for an earlier day, and the service logs as it
    acts), so reading a date range in log order would scan the library's entries from the start.
    """
    if where.library is None or (where.day_from is None and where.day_to is None):
        return None
    library = {"library": where.library}
    first = where.day_from or connection.execute(_FIRST_DAY, library).scalar()
    last = where.day_to or connection.execute(_LAST_DAY, library).scalar()
    if first is None or last is None or last < first:
        return []
    if (last - first).days >= DAY_SPAN_LIMIT:
        return None
    return [first + timedelta(days=offset) for offset in range((last - first).days + 1)]


def _day_by_day(where: LogFilter, days: list[date], after: int, limit: int) -> Select[Any]:
    """A short range: each day's first `limit` positions after `after` (one seek in ix_decision_log_day_seq each,
    read in log order), merged in log order, and only the page's `limit` entries read: however the day's entries
    are spread over the log, and without reading the text of entries the page does not show."""
    others = replace(where, day_from=None, day_to=None)  # each page is one day of the range
    pages = [
        others.where(select(decision_log.c.seq))
        .where(decision_log.c.day == day, decision_log.c.seq > after)
        .with_hint(decision_log, "INDEXED BY ix_decision_log_day_seq", "sqlite")  # not (library, seq): a scan
        .order_by(decision_log.c.seq)
        .limit(limit)
        .subquery()
        for day in days
    ]
    columns = select(decision_log.c.seq, decision_log.c.entry)
    if not pages:
        return columns.where(false())
    merged = union_all(*(select(page.c.seq) for page in pages)).subquery()
    chosen = select(merged.c.seq).order_by(merged.c.seq).limit(limit).subquery()
    return columns.join(chosen, decision_log.c.seq == chosen.c.seq).order_by(decision_log.c.seq)


def _day_span(connection: Connection, library: str | None, days: list[date]) -> tuple[int, int] | None:
    """The first and last position of a library's entries on `days` (None: no entry on any of them).

    Each day's first and last position is one seek in ix_decision_log_day_seq; a page of a longer range then reads
    from the first to the last.
    """
    lowest: int | None = None
    highest = 0
    for day in days:
        low, high = connection.execute(_DAY_SEQS, {"library": library, "day": day}).one()
        if low is not None:
            lowest, highest = low if lowest is None else min(lowest, low), max(highest, high)
    return None if lowest is None else (lowest, highest)


def entries_text(engine: Engine, where: LogFilter) -> Iterator[str]:
    """The selected entries exactly as hashed (leaf hash = SHA-256(0x00 || line)), by library and index, streamed."""
    statement = where.where(select(decision_log.c.entry)).order_by(decision_log.c.library, decision_log.c.idx)
    with engine.connect() as connection:
        result = connection.execution_options(yield_per=5000).execute(statement)
        for row in result:
            yield row.entry


def subject_entries(connection: Connection, library: str, subject_type: str, subject: str) -> list[dict[str, Any]]:
    """The library's entries about one subject (named by its pseudonym), in log order, read in the caller's
    transaction (an Art. 15 copy logs its own reading in the same one)."""
    statement = (
        select(decision_log.c.entry)
        .where(
            decision_log.c.library == library,
            decision_log.c.subject_type == subject_type,
            decision_log.c.subject == subject,
        )
        .order_by(decision_log.c.idx)
    )
    return [json.loads(row.entry) for row in connection.execute(statement)]


def run_entries(engine: Engine, run_id: str) -> Iterator[dict[str, Any]]:
    """The decisions a run logged, in log order."""
    statement = (
        select(decision_log.c.entry)
        .where(and_(decision_log.c.run_id == run_id, decision_log.c.kind == "decision"))
        .order_by(decision_log.c.idx)
    )
    with engine.connect() as connection:
        for row in connection.execution_options(yield_per=5000).execute(statement):
            yield json.loads(row.entry)
