"""The decision log in the store (audit/log.py, audit/verify.py, audit/keys.py, audit/entries.py).

The issue: every library's decisions go into a tamper-evident log, a Merkle tree per library (RFC 9162);
`kodex audit verify` recomputes it and finds any entry changed, removed, inserted or moved, and any
checkpoint not signed by a trusted key; `kodex audit prove` gives a proof an auditor checks offline with the
public key alone; the log's tables refuse UPDATE and DELETE; an append commits with the action it records
or not at all; entries name nobody.

Tampering goes around the append-only triggers the way an attacker with the database owner's rights would:
on PostgreSQL by disabling them, on SQLite by dropping them.
"""

from __future__ import annotations

import base64
import copy
import json
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import Connection, Engine, Table, delete, func, select, text, update
from sqlalchemy.exc import DBAPIError

from kodex.audit.entries import (
    WITHHELD,
    LogEntry,
    canonical,
    decision_entry,
    exception_entry,
    now,
    proposal_entry,
    run_summary_entry,
)
from kodex.audit.keys import key_id, public_key_pem, public_keys, read_public_keys, rotate_signing_key
from kodex.audit.log import (
    CACHED_HEIGHT,
    DAY_BY_DAY_LIMIT,
    Checkpoint,
    LogFilter,
    append,
    checkpoint,
    entries_text,
    head,
    prove,
    query,
    subtree_root,
)
from kodex.audit.merkle import Frontier, MerkleTree, consistency_ranges, inclusion_ranges, leaf_hash, perfect_parts
from kodex.audit.verify import LogVerdict, verify_log, verify_proof
from kodex.config import load_settings
from kodex.errors import NotInLog, ProofInvalid
from kodex.retention.run import plan_decisions
from kodex.rules.facts import PERSONAL_FACTS
from kodex.rules.ruleset import Ruleset
from kodex.services.setup import Workspace, initialise, open_workspace
from kodex.store.schema import LOG_TABLES, decision_log, libraries, log_checkpoints, log_heads, log_keys, log_subtrees
from tests.audit.support import around_the_triggers
from tests.retention.support import import_file, import_lines, reader, run, run_all
from tests.support import SAMPLE, on_postgresql

LIBRARY = "svkpk"
DAY = date(2026, 11, 22)
RUN = "6f1c2a4e-0b7d-4c55-9a3e-2d8f6b1e7c90"
TIME = "2026-11-22T01:00:00.000000+00:00"
FAR = 1_000_000  # an index offset no test log reaches: (library, idx) is unique at every row, so moves go through it
BLOCK = 1 << CACHED_HEIGHT  # the entries of the smallest subtree an append keeps in log_subtrees


# -- a log to verify: synthetic decisions, appended and signed as a run does ----------------------


def decision(number: int) -> dict[str, Any]:
    """A decision as retention.run records it (rules.decision.build_decision plus outcome, ids and pseudonym)."""
    return {
        "decision_id": str(uuid.uuid4()),
        "run_id": RUN,
        "library": LIBRARY,
        "subject_type": "reader",
        "subject": f"{number:032x}",
        "rule": "svkpk.retention.after_settlement",
        "action": "anonymise",
        "effect": "apply",
        "cite": "čl. 9 odst. 2; čl. 10 odst. 7",
        "as_of": "2026-11-22",
        "policy_revision": "7" * 64,
        "outcome": "applied",
        "reasons": [{"condition": "not obligations", "holds": True, "values": {"obligations": False}}],
    }


def append_decisions(engine: Engine, count: int) -> None:
    with engine.begin() as connection:
        start = head(connection, LIBRARY).size
        append(connection, LIBRARY, DAY, [decision_entry(decision(start + n), TIME) for n in range(count)])


def append_run_summary(engine: Engine) -> None:
    with engine.begin() as connection:
        summary = {"reviewed": 1, "decisions": [{"action": "anonymise", "outcome": "applied", "count": 1}]}
        append(
            connection,
            LIBRARY,
            DAY,
            [run_summary_entry(str(uuid.uuid4()), LIBRARY, RUN, "2026-11-22", "7" * 64, summary, False, TIME)],
        )


def sign(work: Workspace) -> Checkpoint:
    with work.engine.begin() as connection:
        return checkpoint(connection, LIBRARY, work.master, now())


@pytest.fixture
def workspace(kodex_env: dict[str, str], ruleset: Ruleset) -> Iterator[Workspace]:
    """An initialised installation whose libraries have agreements, and whose logs are empty: the agreements are
    set in the store directly (recording one is itself a log entry), so these tests count entries from index 0."""
    settings = load_settings()
    initialise(settings, ruleset)
    work = open_workspace(settings)
    with work.engine.begin() as connection:
        connection.execute(
            update(libraries).values(agreement_signed_on=date(2026, 1, 5), agreement_reference="DPA-T-1")
        )
    yield work
    work.engine.dispose()


@pytest.fixture
def log(workspace: Workspace) -> Workspace:
    """300 entries of svkpk: checkpoint 1 signs the first 100, checkpoint 2 all 300.

    Every perfect subtree of BLOCK entries and more is cached (`cached_subtrees(300)`): entries 0–BLOCK-1,
    BLOCK–2·BLOCK-1, …, and the larger ones over them; the entries after the last whole block are in none.
    """
    append_decisions(workspace.engine, 100)
    sign(workspace)
    append_decisions(workspace.engine, 200)
    sign(workspace)
    return workspace


def verdict(engine: Engine, trusted: dict[str, Ed25519PublicKey] | None = None) -> LogVerdict:
    [one] = verify_log(engine, library=LIBRARY, trusted=trusted)
    return one


def exported_keys(engine: Engine) -> dict[str, Ed25519PublicKey]:
    """The public keys as an auditor holds them: `kodex audit public-key --all` written to a file and read back."""
    with engine.connect() as connection:
        keys = public_keys(connection)
    pem = "".join(f"# kodex checkpoint key {kid}\n{public_key_pem(public)}" for kid, public in keys.items())
    return read_public_keys(pem.encode(), "kodex-keys.pem")


def leaf_hashes(connection: Connection, library: str = LIBRARY) -> list[bytes]:
    rows = connection.execute(
        select(decision_log.c.leaf_hash).where(decision_log.c.library == library).order_by(decision_log.c.idx)
    )
    return [bytes(h) for h in rows.scalars()]


def entry_ids(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(decision_log.c.id).where(decision_log.c.library == LIBRARY).order_by(decision_log.c.idx)
        )
        return list(rows.scalars())


def recomputed_root(engine: Engine) -> bytes:
    with engine.connect() as connection:
        return MerkleTree(leaf_hashes(connection)).root()


def row_count(connection: Connection, table: Table) -> int:
    return connection.execute(select(func.count()).select_from(table)).scalar_one()


# -- going around the triggers --------------------------------------------------------------------


def at(index: int) -> Any:
    return (decision_log.c.library == LIBRARY) & (decision_log.c.idx == index)


def stored_entry(connection: Connection, index: int) -> dict[str, Any]:
    entry: dict[str, Any] = json.loads(connection.execute(select(decision_log.c.entry).where(at(index))).scalar_one())
    return entry


def rewrite(connection: Connection, index: int, change: Callable[[dict[str, Any]], None], *, rehash: bool) -> None:
    """Change entry `index`'s text (canonical, as kodex writes it); with `rehash`, its leaf hash to match."""
    entry = stored_entry(connection, index)
    change(entry)
    new = canonical(entry)
    values: dict[str, Any] = {"entry": new.decode()}
    if rehash:
        values["leaf_hash"] = leaf_hash(new)
    connection.execute(update(decision_log).where(at(index)).values(**values))


def falsify_cite(entry: dict[str, Any]) -> None:
    entry["cite"] = "čl. 99 odst. 1"


def shift(connection: Connection, first: int, by: int) -> None:
    """Move the entries from index `first` on by `by` places."""
    c = decision_log.c
    mine = c.library == LIBRARY
    connection.execute(update(decision_log).where(mine, c.idx >= first).values(idx=c.idx + FAR))
    connection.execute(update(decision_log).where(mine, c.idx >= FAR).values(idx=c.idx - FAR + by))


def swap(connection: Connection, one: int, other: int) -> None:
    c = decision_log.c
    connection.execute(update(decision_log).where(at(one)).values(idx=FAR))
    connection.execute(update(decision_log).where(at(other)).values(idx=one))
    connection.execute(update(decision_log).where(c.library == LIBRARY, c.idx == FAR).values(idx=other))


def insert_forged(connection: Connection, index: int) -> None:
    """A well-formed entry with a leaf hash of its own, stored at `index`."""
    entry = decision_entry(decision(FAR), TIME)
    body = canonical(entry)
    connection.execute(
        decision_log.insert().values(
            library=LIBRARY,
            idx=index,
            id=entry["id"],
            kind="decision",
            run_id=RUN,
            as_of=entry["as_of"],
            day=DAY,
            subject_type="reader",
            subject=entry["subject"],
            rule=entry["rule"],
            action=entry["action"],
            outcome=entry["outcome"],
            entry=body.decode(),
            leaf_hash=leaf_hash(body),
        )
    )


def rebuild_subtrees(connection: Connection) -> Frontier:
    """Set the cached subtrees to what the stored entries give (they are not signed); the stored entries' frontier."""
    frontier = Frontier()
    nodes = []
    for hashed in leaf_hashes(connection):
        nodes += [(h, p, node) for h, p, node in frontier.append(hashed) if h >= CACHED_HEIGHT]
    connection.execute(delete(log_subtrees).where(log_subtrees.c.library == LIBRARY))
    for height, position, node in nodes:
        connection.execute(log_subtrees.insert().values(library=LIBRARY, height=height, position=position, hash=node))
    return frontier


def rebuild_head(connection: Connection) -> None:
    """Set the head and the cached subtrees to what the stored entries give, as a careful attacker would."""
    frontier = rebuild_subtrees(connection)
    connection.execute(
        update(log_heads).where(log_heads.c.library == LIBRARY).values(size=frontier.size, frontier=frontier.to_bytes())
    )


def attacker_key(connection: Connection) -> tuple[str, Ed25519PrivateKey]:
    """Another Ed25519 key, its public half put among the store's keys."""
    private = Ed25519PrivateKey.generate()
    raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    kid = key_id(raw)
    connection.execute(log_keys.insert().values(key_id=kid, public_key=raw, created_at=datetime.now(UTC)))
    return kid, private


def checkpoint_row(connection: Connection, number: int) -> Any:
    rows = connection.execute(
        select(log_checkpoints).where(log_checkpoints.c.library == LIBRARY).order_by(log_checkpoints.c.id)
    ).all()
    return rows[number - 1]


def note_of(row: Any, root: bytes | None = None) -> bytes:
    cp = Checkpoint(
        row.library, row.origin, row.size, bytes(row.root) if root is None else root, row.time, row.key_id, b""
    )
    return cp.note()


# -- what the verifier names first ----------------------------------------------------------------


def cached_subtrees(size: int) -> list[tuple[int, int]]:
    """The (height, position) of every subtree a log of `size` entries keeps: perfect, of BLOCK entries and more."""
    return [(h, p) for h in range(CACHED_HEIGHT, size.bit_length()) for p in range(size >> h)]


def entries_of(height: int, position: int) -> str:
    first = position << height
    return f"entries {first}–{first + (1 << height) - 1}"


def finds_first(changed: int, signed: Sequence[int], stored: int) -> tuple[str, int]:
    """What the verifier names first when `changed` is the first index whose entry differs from the one appended.

    It reads the entries in index order and stops at the first check that fails: the cached subtree of BLOCK
    entries holding `changed` once its last entry is read, or the first checkpoint past `changed` (signed sizes in
    checkpoint order), whichever comes first, the subtree when both end at the same entry; if no whole block and
    no checkpoint covers `changed`, only the head can tell. ("subtree", its first entry), ("checkpoint", its
    number) or ("head", 0).
    """
    block_end = (changed // BLOCK + 1) * BLOCK
    past = [(size, number) for number, size in enumerate(signed, 1) if changed < size <= stored]
    if block_end <= stored and (not past or block_end <= min(past)[0]):
        return "subtree", block_end - BLOCK
    if past:
        return "checkpoint", min(past)[1]
    return "head", 0


def subtree_changed(first: int) -> str:
    """The verifier's finding when entries first..first+BLOCK-1 do not give the subtree cached when appended."""
    return (
        f"{LIBRARY}: {entries_of(CACHED_HEIGHT, first // BLOCK)} do not hash to the subtree recorded when they were "
        "appended: one of them was changed, removed, inserted or moved"
    )


def checkpoint_broken(engine: Engine, number: int) -> str:
    """The verifier's finding when checkpoint `number` signed another root than its first entries now give."""
    with engine.connect() as connection:
        row = checkpoint_row(connection, number)
        given = MerkleTree(leaf_hashes(connection)).root(row.size)

    def b64(value: bytes) -> str:
        return base64.b64encode(value).decode()

    return (
        f"{LIBRARY}: checkpoint {number} ({row.size} entries, {row.time}) signed root {b64(bytes(row.root))}, but "
        f"entries 0–{row.size - 1} give {b64(given)}: an entry before index {row.size} was changed, removed, "
        "inserted or moved"
    )


def first_problem(engine: Engine, changed: int) -> str | None:
    """The verifier's first finding for the log as stored now, `changed` its first index changed (None: the head's)."""
    with engine.connect() as connection:
        stored = len(leaf_hashes(connection))
        signed = list(
            connection.execute(
                select(log_checkpoints.c.size)
                .where(log_checkpoints.c.library == LIBRARY)
                .order_by(log_checkpoints.c.id)
            ).scalars()
        )
    kind, which = finds_first(changed, signed, stored)
    if kind == "subtree":
        return subtree_changed(which)
    return checkpoint_broken(engine, which) if kind == "checkpoint" else None


# -- a log as runs leave it -----------------------------------------------------------------------


def test_the_logs_of_the_sample_libraries_after_a_run_are_intact_and_signed(
    workspace: Workspace, ruleset: Ruleset
) -> None:
    import_file(workspace, ruleset, SAMPLE)
    run_all(workspace, ruleset)

    verdicts = verify_log(workspace.engine)

    with workspace.engine.connect() as connection:
        counted = connection.execute(select(decision_log.c.library, func.count()).group_by(decision_log.c.library))
        rows: dict[str, int] = {library: count for library, count in counted}
    assert [v.library for v in verdicts] == sorted(ruleset.libraries)
    for v in verdicts:
        assert v.problems == [], v.library
        assert v.entries == rows[v.library] > 0
        assert v.checkpoints >= 1


@pytest.fixture
def big_log(workspace: Workspace) -> Workspace:
    """701 entries of svkpk (`cached_subtrees(701)` cached: up to 512 entries), checkpoints at 1, 102, 256, 512, 701."""
    for count in (0, 100, 153, 255, 188):
        append_decisions(workspace.engine, count)
        append_run_summary(workspace.engine)
        sign(workspace)
    return workspace


def test_a_log_of_701_entries_keeps_every_perfect_subtree_of_the_cached_height_and_more(big_log: Workspace) -> None:
    with big_log.engine.connect() as connection:
        cached = connection.execute(select(log_subtrees.c.height, log_subtrees.c.position)).all()
        sizes = list(connection.execute(select(log_checkpoints.c.size).order_by(log_checkpoints.c.id)).scalars())

    assert sorted(cached) == cached_subtrees(701)
    assert [p for h, p in sorted(cached) if h == CACHED_HEIGHT] == list(range(701 // BLOCK))  # every whole block
    assert max(cached) == (9, 0)  # up to entries 0–511, the largest perfect subtree of 701 entries
    assert sizes == [1, 102, 256, 512, 701]
    assert verdict(big_log.engine) == LogVerdict(LIBRARY, entries=701, checkpoints=5)


def test_every_entry_of_a_log_of_701_proves_its_inclusion_offline_with_the_exported_key(big_log: Workspace) -> None:
    keys = exported_keys(big_log.engine)

    for index, entry_id in enumerate(entry_ids(big_log.engine)):
        document = json.loads(json.dumps(prove(big_log.engine, entry_id)))  # as the auditor's file holds it

        assert document["leaf_index"] == index
        assert verify_proof(document, keys).startswith(
            f"entry {entry_id} is entry {index} of the log kodex/{LIBRARY} in the tree of 701 entries"
        )


def test_subtree_roots_from_the_cached_subtrees_equal_the_tree_recomputed_from_the_leaves(big_log: Workspace) -> None:
    sizes = (1, 102, 256, 512, 701)
    with big_log.engine.connect() as connection:
        leaves = leaf_hashes(connection)
        tree = MerkleTree(leaves)
        ranges = {(0, size) for size in sizes}
        ranges |= {r for index in range(701) for r in inclusion_ranges(index, 701)}
        ranges |= {r for size in sizes[:-1] for r in consistency_ranges(size, 701)}
        ranges |= {r for index in range(256) for r in inclusion_ranges(index, 256)}

        wrong = [
            (lo, hi)
            for lo, hi in sorted(ranges)
            if subtree_root(connection, LIBRARY, lo, hi) != MerkleTree(leaves[lo:hi]).root()
        ]

        used = {part for lo, hi in ranges for part in perfect_parts(lo, hi)}
        assert {h for h, _ in used} == set(range(10))  # cached subtrees of every height kept, and leaves hashed below
        assert {part for part in used if part[0] >= CACHED_HEIGHT} <= set(cached_subtrees(701))
        assert wrong == []
        assert [subtree_root(connection, LIBRARY, 0, size) for size in sizes] == [tree.root(size) for size in sizes]


def test_an_export_of_a_library_recomputes_the_root_its_last_checkpoint_signed(big_log: Workspace) -> None:
    lines = list(entries_text(big_log.engine, LogFilter(library=LIBRARY)))

    with big_log.engine.connect() as connection:
        last = checkpoint_row(connection, 5)
    assert len(lines) == 701
    assert MerkleTree([leaf_hash(line.encode()) for line in lines]).root() == bytes(last.root)


def test_query_pages_through_the_selected_entries_in_log_order(big_log: Workspace) -> None:
    summaries = LogFilter(library=LIBRARY, kind="run_summary")
    seen: list[tuple[int, dict[str, Any]]] = []
    after = 0
    while page := query(big_log.engine, summaries, after=after, limit=2):
        seen += page
        after = page[-1][0]

    assert seen == query(big_log.engine, summaries, limit=100)
    assert [entry["kind"] for _, entry in seen] == ["run_summary"] * 5
    assert [seq for seq, _ in seen] == sorted({seq for seq, _ in seen})
    assert (
        len(query(big_log.engine, LogFilter(library=LIBRARY, rule="svkpk.retention.after_settlement"), limit=1000))
        == 696
    )
    assert query(big_log.engine, LogFilter(library=LIBRARY, rule="no.such.rule")) == []


def test_a_date_range_selects_every_entry_of_its_days_even_logged_out_of_day_order(log: Workspace) -> None:
    def on(day: date, count: int) -> None:  # entries for `day` appended now: a run for an earlier day comes later
        with log.engine.begin() as connection:
            start = head(connection, LIBRARY).size
            append(connection, LIBRARY, day, [decision_entry(decision(start + n), TIME) for n in range(count)])

    on(date(2026, 11, 23), 5)
    on(date(2026, 11, 20), 3)
    on(date(2026, 11, 24), 4)
    on(date(2026, 11, 20), 2)
    with log.engine.connect() as connection:
        days = dict(connection.execute(select(decision_log.c.seq, decision_log.c.day)).all())

    def selected(**days_: date) -> list[int]:
        return [seq for seq, _ in query(log.engine, LogFilter(library=LIBRARY, **days_), limit=1000)]

    assert len(selected(day_from=date(2026, 11, 20), day_to=date(2026, 11, 20))) == 5  # both runs for the 20th
    for bounds in ({"day_from": date(2026, 11, 20), "day_to": date(2026, 11, 23)}, {"day_from": date(2026, 11, 23)},
                   {"day_to": date(2026, 11, 21)}, {"day_from": date(2026, 11, 25)}):  # fmt: skip
        low, high = bounds.get("day_from", date.min), bounds.get("day_to", date.max)
        assert selected(**bounds) == sorted(seq for seq, day in days.items() if low <= day <= high), bounds
    assert selected(day_from=date(2026, 11, 21), day_to=date(2026, 11, 21)) == []  # a day with no entry
    seqs = selected(day_from=date(2026, 11, 20), day_to=date(2026, 11, 24))
    # a short range is read day by day, a longer one between its days' first and last positions: the same pages
    for first, last in ((date(2026, 11, 20), None), (date(2026, 9, 1), date(2026, 12, 31))):
        assert (last or date(2026, 11, 24)) - first >= timedelta(days=0 if last is None else DAY_BY_DAY_LIMIT)
        paged, after = [], 0
        while page := query(log.engine, LogFilter(library=LIBRARY, day_from=first, day_to=last), after=after, limit=3):
            paged += [seq for seq, _ in page]
            after = page[-1][0]
        assert paged == seqs


# -- tampering: every change is found and named ------------------------------------------------------


def test_the_untouched_log_is_intact(log: Workspace) -> None:
    assert verdict(log.engine) == LogVerdict(LIBRARY, entries=300, checkpoints=2)
    assert verdict(log.engine, trusted=exported_keys(log.engine)).ok


def test_an_entry_changed_in_place_is_named_by_its_index(log: Workspace) -> None:
    with around_the_triggers(log.engine) as connection:
        rewrite(connection, 42, falsify_cite, rehash=False)
        entry_id = stored_entry(connection, 42)["id"]

    found = verdict(log.engine)

    assert found.problems == [
        f"{LIBRARY}: entry 42 (id {entry_id}): its text does not hash to the leaf hash logged with it "
        "(the entry was changed)"
    ]


def found_in_the_log_by(index: int) -> str:
    """A test id: what finds entry `index` of the `log` fixture changed (checkpoints of 100 and 300 entries)."""
    kind, which = finds_first(index, (100, 300), 300)
    if kind == "subtree":
        return f"entry-{index}-by-the-subtree-of-{which}-{which + BLOCK - 1}"
    return f"entry-{index}-by-the-{kind}" + (f"-{which}" if kind == "checkpoint" else "")


@pytest.mark.parametrize(
    "index",
    [pytest.param(index, id=found_in_the_log_by(index)) for index in (50, 99, 150, 270, 299)],
)  # under the first checkpoint, its last entry, between the checkpoints, last entry of the log
def test_an_entry_changed_with_its_leaf_hash_is_found_by_the_signed_root_or_the_cached_subtree(
    log: Workspace, index: int
) -> None:
    with around_the_triggers(log.engine) as connection:
        rewrite(connection, index, falsify_cite, rehash=True)

    assert verdict(log.engine).problems == [first_problem(log.engine, index)]


def test_an_entry_changed_with_its_leaf_hash_the_head_and_the_subtrees_is_found_by_the_checkpoint(
    log: Workspace,
) -> None:
    with around_the_triggers(log.engine) as connection:
        rewrite(connection, 150, falsify_cite, rehash=True)
        rebuild_head(connection)

    assert verdict(log.engine).problems == [checkpoint_broken(log.engine, 2)]


@pytest.mark.parametrize(
    ("column", "value"),
    [
        pytest.param("rule", "svkpk.retention.another_rule", id="rule"),
        pytest.param("action", "purge", id="action"),
        pytest.param("outcome", "retained", id="outcome"),
        pytest.param("subject", "f" * 32, id="subject"),
    ],
)
def test_a_query_column_changed_is_reported_as_the_row_changed(log: Workspace, column: str, value: str) -> None:
    with around_the_triggers(log.engine) as connection:
        connection.execute(update(decision_log).where(at(42)).values({column: value}))
        said = stored_entry(connection, 42)[column]

    [problem] = verdict(log.engine).problems

    assert problem.endswith(f"its row says {column} = {value!r}, the entry says {said!r} (the row was changed)")
    assert problem.startswith(f"{LIBRARY}: entry 42 ")


def test_an_entry_deleted_in_the_middle_is_missing(log: Workspace) -> None:
    with around_the_triggers(log.engine) as connection:
        connection.execute(delete(decision_log).where(at(42)))

    found = verdict(log.engine)

    assert found.problems == [
        f"{LIBRARY}: entry 42 is missing: the next stored entry has index 43 (an entry was deleted)"
    ]
    assert found.entries == 42


@pytest.mark.parametrize(
    "careful", [pytest.param(False, id="as-left"), pytest.param(True, id="subtrees-and-head-recomputed")]
)
def test_an_entry_deleted_and_the_gap_closed_is_found_by_its_cached_subtree_or_the_checkpoint(
    log: Workspace, careful: bool
) -> None:
    with around_the_triggers(log.engine) as connection:
        connection.execute(delete(decision_log).where(at(42)))
        shift(connection, 43, -1)
        if careful:  # as an attacker would who knows the cache and the head are not signed
            rebuild_head(connection)

    expected = checkpoint_broken(log.engine, 1) if careful else first_problem(log.engine, 42)
    assert verdict(log.engine).problems == [expected]


@pytest.mark.parametrize(
    "careful", [pytest.param(False, id="as-left"), pytest.param(True, id="subtrees-and-head-recomputed")]
)
def test_an_entry_inserted_in_the_middle_is_found_by_its_cached_subtree_or_the_checkpoint(
    log: Workspace, careful: bool
) -> None:
    with around_the_triggers(log.engine) as connection:
        shift(connection, 42, +1)
        insert_forged(connection, 42)
        if careful:
            rebuild_head(connection)

    expected = checkpoint_broken(log.engine, 1) if careful else first_problem(log.engine, 42)
    assert verdict(log.engine).problems == [expected]


@pytest.mark.parametrize("careful", [pytest.param(False, id="as-left"), pytest.param(True, id="subtrees-recomputed")])
def test_an_entry_inserted_among_entries_no_checkpoint_signed_yet_is_found_by_its_cached_subtree_or_the_head(
    log: Workspace, careful: bool
) -> None:
    append_decisions(log.engine, 5)
    with around_the_triggers(log.engine) as connection:
        shift(connection, 302, +1)
        insert_forged(connection, 302)
        if careful:  # the subtrees only: with the head set to 306 too, nothing signed or recorded would tell
            rebuild_subtrees(connection)

    by_the_head = (
        f"{LIBRARY}: 306 entries are stored, but the log recorded appending 305: entries were added around the log"
    )
    expected = by_the_head if careful else first_problem(log.engine, 302) or by_the_head
    assert verdict(log.engine).problems == [expected]


@pytest.mark.parametrize(
    "careful", [pytest.param(False, id="as-left"), pytest.param(True, id="subtrees-and-head-recomputed")]
)
def test_two_entries_swapped_are_found_by_their_cached_subtree_or_the_checkpoint(log: Workspace, careful: bool) -> None:
    with around_the_triggers(log.engine) as connection:
        swap(connection, 10, 20)
        if careful:
            rebuild_head(connection)

    expected = checkpoint_broken(log.engine, 1) if careful else first_problem(log.engine, 10)
    assert verdict(log.engine).problems == [expected]


def test_a_tail_removed_and_the_head_set_back_is_found_by_the_checkpoint(log: Workspace) -> None:
    with around_the_triggers(log.engine) as connection:
        connection.execute(delete(decision_log).where(decision_log.c.idx >= 240))
        rebuild_head(connection)

    found = verdict(log.engine)

    [problem] = found.problems
    assert problem.startswith(f"{LIBRARY}: checkpoint 2 (300 entries")
    assert "signed a tree of 300 entries, but only 240 are stored: entries were removed from the end of the log" in (
        problem
    )


def test_a_tail_removed_after_the_last_checkpoint_is_found_by_the_head(log: Workspace) -> None:
    append_decisions(log.engine, 7)
    with around_the_triggers(log.engine) as connection:
        connection.execute(delete(decision_log).where(decision_log.c.idx >= 303))

    found = verdict(log.engine)

    assert found.problems == [
        f"{LIBRARY}: the log recorded appending 307 entries, but 303 are stored: "
        "entries were removed from the end of the log"
    ]


def test_a_tail_removed_under_a_checkpoint_without_touching_the_head_is_found(log: Workspace) -> None:
    with around_the_triggers(log.engine) as connection:
        connection.execute(delete(decision_log).where(decision_log.c.idx >= 290))

    found = verdict(log.engine)

    with log.engine.connect() as connection:
        signed = checkpoint_row(connection, 2)
    assert found.problems == [
        f"{LIBRARY}: checkpoint 2 (300 entries, {signed.time}) signed a tree of 300 entries, but only 290 are "
        "stored: entries were removed from the end of the log",
        f"{LIBRARY}: the log recorded appending 300 entries, but 290 are stored: "
        "entries were removed from the end of the log",
    ]


def test_a_tail_removed_and_only_the_heads_size_set_back_is_reported(log: Workspace) -> None:
    with around_the_triggers(log.engine) as connection:
        connection.execute(delete(decision_log).where(decision_log.c.idx >= 290))
        connection.execute(update(log_heads).where(log_heads.c.library == LIBRARY).values(size=290))

    found = verdict(log.engine)

    assert any("entries were removed from the end of the log" in problem for problem in found.problems)


def test_a_head_that_does_not_match_the_entries_is_found(log: Workspace) -> None:
    with log.engine.begin() as connection:  # log_heads is not append-only: it moves with every append
        connection.execute(
            update(log_heads).where(log_heads.c.library == LIBRARY).values(frontier=bytes(32) * (300).bit_count())
        )

    assert verdict(log.engine).problems == [
        f"{LIBRARY}: the log's head does not match its entries (the head was changed)"
    ]


def test_a_checkpoint_re_signed_with_another_key_under_its_key_id_fails_on_the_signature(log: Workspace) -> None:
    with around_the_triggers(log.engine) as connection:
        row = checkpoint_row(connection, 2)
        signature = Ed25519PrivateKey.generate().sign(note_of(row))
        connection.execute(update(log_checkpoints).where(log_checkpoints.c.id == row.id).values(signature=signature))

    [problem] = verdict(log.engine).problems

    assert problem.startswith(f"{LIBRARY}: checkpoint 2 (300 entries")
    assert f"the signature does not verify with key {row.key_id}" in problem


def test_a_rewritten_log_re_signed_with_a_key_put_in_the_store_fails_only_with_the_trusted_keys(
    log: Workspace,
) -> None:
    trusted = exported_keys(log.engine)
    with around_the_triggers(log.engine) as connection:
        rewrite(connection, 270, falsify_cite, rehash=True)
        rebuild_head(connection)
        row = checkpoint_row(connection, 2)
        root = head(connection, LIBRARY).root()
        kid, private = attacker_key(connection)
        connection.execute(
            update(log_checkpoints)
            .where(log_checkpoints.c.id == row.id)
            .values(root=root, key_id=kid, signature=private.sign(note_of(row, root)))
        )

    with_the_stores_keys = verdict(log.engine)
    with_the_trusted_keys = verdict(log.engine, trusted=trusted)

    assert with_the_stores_keys == LogVerdict(LIBRARY, entries=300, checkpoints=2)
    assert with_the_trusted_keys.problems == [
        f"{LIBRARY}: checkpoint 2 (300 entries, {row.time}) is signed by key {kid}, "
        "which is not among the trusted keys given"
    ]


def test_a_log_rewritten_and_signed_again_is_found_by_its_earlier_checkpoint(log: Workspace) -> None:
    with around_the_triggers(log.engine) as connection:
        rewrite(connection, 50, falsify_cite, rehash=True)
        rebuild_head(connection)
    rewritten = sign(log)  # the operator holds the key: the new checkpoint is genuine

    found = verdict(log.engine, trusted=exported_keys(log.engine))

    assert found.checkpoints == 3
    assert rewritten.root == recomputed_root(log.engine)
    assert found.problems == [checkpoint_broken(log.engine, 1)]


def test_a_cached_subtree_deleted_is_reported(log: Workspace) -> None:
    def cached_on_the_path(index: int) -> set[tuple[int, int]]:
        """The cached subtrees the proof of entry `index` against checkpoint 2 (300 entries) reads."""
        ranges = inclusion_ranges(index, 300)
        return {part for lo, hi in ranges for part in perfect_parts(lo, hi) if part[0] >= CACHED_HEIGHT}

    height, position = min(cached_on_the_path(280))  # the smallest cached subtree the proof of entry 280 reads
    elsewhere = next(index for index in range(300) if (height, position) not in cached_on_the_path(index))
    ids = entry_ids(log.engine)
    with around_the_triggers(log.engine) as connection:
        gone = connection.execute(
            delete(log_subtrees).where(
                log_subtrees.c.library == LIBRARY,
                log_subtrees.c.height == height,
                log_subtrees.c.position == position,
            )
        )
        assert gone.rowcount == 1

    with pytest.raises(NotInLog, match=f"lacks the subtree of {entries_of(height, position)} "):
        prove(log.engine, ids[280])
    assert verify_proof(prove(log.engine, ids[elsewhere]), exported_keys(log.engine))  # a path not through it
    assert verdict(log.engine).problems == [
        f"{LIBRARY}: the subtree of {entries_of(height, position)} recorded when they were appended is missing "
        "(a row of log_subtrees was deleted; proofs through it cannot be made)"
    ]


def test_an_entry_appended_off_schema_1_is_reported(log: Workspace) -> None:
    entry = decision_entry(decision(300), TIME)
    entry["actor"] = "the librarian on duty"  # schema 1: an object {type, id, role}
    with log.engine.begin() as connection:
        append(connection, LIBRARY, DAY, [entry])
    sign(log)

    with pytest.raises(ProofInvalid, match=r"entry\.actor"):
        verify_proof(prove(log.engine, entry["id"]), exported_keys(log.engine))
    problems = verdict(log.engine).problems
    assert any(problem.startswith(f"{LIBRARY}: entry 300 (id {entry['id']}): ") for problem in problems), problems


# -- the triggers ---------------------------------------------------------------------------------


def _change(table: Table) -> Any:
    column = {"decision_log": "outcome", "log_subtrees": "hash", "log_checkpoints": "time"}[table.name]
    value: Any = bytes(32) if column == "hash" else "forged"
    return update(table).values({column: value})


@pytest.mark.parametrize("table", LOG_TABLES, ids=[t.name for t in LOG_TABLES])
@pytest.mark.parametrize("statement", ["UPDATE", "DELETE"])
def test_the_log_tables_refuse_update_and_delete(log: Workspace, table: Table, statement: str) -> None:
    def rows() -> list[tuple[Any, ...]]:
        with log.engine.connect() as connection:
            return sorted((tuple(row) for row in connection.execute(select(table))), key=repr)

    before = rows()

    with (
        pytest.raises(DBAPIError, match=f"{table.name} is append-only; {statement} refused"),
        log.engine.begin() as connection,
    ):
        connection.execute(_change(table) if statement == "UPDATE" else delete(table))

    assert before  # the log has rows in every table
    assert rows() == before


@pytest.mark.skipif(not on_postgresql(), reason="SQLite has no TRUNCATE statement")
@pytest.mark.parametrize("table", LOG_TABLES, ids=[t.name for t in LOG_TABLES])
def test_the_log_tables_refuse_truncate_on_postgresql(log: Workspace, table: Table) -> None:
    with (
        pytest.raises(DBAPIError, match=f"{table.name} is append-only; TRUNCATE refused"),
        log.engine.begin() as connection,
    ):
        connection.execute(text(f"TRUNCATE {table.name}"))

    with log.engine.connect() as connection:
        assert row_count(connection, table) > 0


# -- key rotation ---------------------------------------------------------------------------------


def test_after_rotating_the_key_old_checkpoints_and_proofs_still_verify_and_the_old_private_key_is_gone(
    log: Workspace,
) -> None:
    first = entry_ids(log.engine)[0]
    old_proof = prove(log.engine, first)
    with log.engine.begin() as connection:
        old, new = rotate_signing_key(connection, log.master)
    append_decisions(log.engine, 5)
    signed = sign(log)

    keys = exported_keys(log.engine)
    with log.engine.connect() as connection:
        stored = {row.key_id: row for row in connection.execute(select(log_keys))}
        signers = list(connection.execute(select(log_checkpoints.c.key_id).order_by(log_checkpoints.c.id)).scalars())

    assert old is not None
    assert signers == [old, old, new] and signed.key_id == new
    assert set(keys) == {old, new}
    assert stored[old].wrapped_private is None and stored[old].retired_at is not None
    assert stored[new].wrapped_private is not None and stored[new].retired_at is None
    assert verdict(log.engine, trusted=keys) == LogVerdict(LIBRARY, entries=305, checkpoints=3)
    assert old_proof["checkpoint"]["key_id"] == old
    assert "in the tree of 300 entries" in verify_proof(old_proof, {old: keys[old]})
    assert "in the tree of 305 entries" in verify_proof(prove(log.engine, first), {new: keys[new]})


def test_an_auditor_without_the_retired_key_cannot_verify_the_checkpoints_it_signed(log: Workspace) -> None:
    with log.engine.begin() as connection:
        old, new = rotate_signing_key(connection, log.master)
    sign(log)
    newest_only = {new: exported_keys(log.engine)[new]}

    found = verdict(log.engine, trusted=newest_only)

    assert len(found.problems) == 2
    for number, problem in enumerate(found.problems, 1):
        assert problem.startswith(f"{LIBRARY}: checkpoint {number} (")
        assert problem.endswith(f"is signed by key {old}, which is not among the trusted keys given")


# -- offline proofs -------------------------------------------------------------------------------


@pytest.fixture
def proof(log: Workspace) -> dict[str, Any]:
    """The proof of entry 42 against checkpoint 2 (300 entries), as `kodex audit prove` prints it."""
    document: dict[str, Any] = json.loads(json.dumps(prove(log.engine, entry_ids(log.engine)[42])))
    return document


def flip(b64: str) -> str:
    raw = bytearray(base64.b64decode(b64))
    raw[0] ^= 1
    return base64.b64encode(bytes(raw)).decode()


def _entry_changed(p: dict[str, Any]) -> None:
    p["entry"]["cite"] = "čl. 99 odst. 1"


def _leaf_index(p: dict[str, Any]) -> None:
    p["leaf_index"] = 43


def _signature(p: dict[str, Any]) -> None:
    p["checkpoint"]["signature"] = flip(p["checkpoint"]["signature"])


def _checkpoint_size(p: dict[str, Any]) -> None:
    p["checkpoint"]["size"] = 299
    p["tree_size"] = 299


def _checkpoint_root(p: dict[str, Any]) -> None:
    p["checkpoint"]["root"] = flip(p["checkpoint"]["root"])


def _tree_size(p: dict[str, Any]) -> None:
    p["tree_size"] = 299


def _path(p: dict[str, Any]) -> None:
    p["inclusion_proof"][0] = flip(p["inclusion_proof"][0])


def _missing_key(p: dict[str, Any]) -> None:
    del p["checkpoint"]


def _extra_key(p: dict[str, Any]) -> None:
    p["note"] = "trust me"


def _entry_missing_key(p: dict[str, Any]) -> None:
    del p["entry"]["cite"]


def _not_base64(p: dict[str, Any]) -> None:
    p["checkpoint"]["signature"] = "not base64!"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        pytest.param(_entry_changed, "does not lead from the entry to the signed root", id="entry-changed"),
        pytest.param(_leaf_index, "is not entry 43 of that tree", id="leaf-index-changed"),
        pytest.param(_path, "does not lead from the entry to the signed root", id="path-changed"),
        pytest.param(_signature, "the checkpoint's signature does not verify with key", id="signature-changed"),
        pytest.param(_checkpoint_size, "the checkpoint's signature does not verify", id="checkpoint-size-changed"),
        pytest.param(_checkpoint_root, "the checkpoint's signature does not verify", id="checkpoint-root-changed"),
        pytest.param(_tree_size, "the proof is for a tree of 299 entries, the checkpoint signs 300", id="tree-size"),
        pytest.param(_missing_key, "not a kodex-inclusion-proof/1 document: checkpoint: Field required", id="missing"),
        pytest.param(_extra_key, "not a kodex-inclusion-proof/1 document: note: Extra inputs", id="extra-key"),
        pytest.param(_entry_missing_key, "document: entry.cite: Field required", id="entry-missing-key"),
        pytest.param(_not_base64, "a hash or the signature is not base64", id="not-base64"),
    ],
)
def test_a_proof_that_was_changed_is_rejected_saying_why(
    log: Workspace, proof: dict[str, Any], change: Callable[[dict[str, Any]], None], reason: str
) -> None:
    keys = exported_keys(log.engine)
    assert verify_proof(copy.deepcopy(proof), keys)  # as it came from the log, it verifies
    change(proof)

    with pytest.raises(ProofInvalid, match=reason):
        verify_proof(proof, keys)


def test_a_proof_checked_with_the_wrong_public_key_is_rejected(log: Workspace, proof: dict[str, Any]) -> None:
    kid = proof["checkpoint"]["key_id"]
    other = Ed25519PrivateKey.generate().public_key()

    with pytest.raises(ProofInvalid, match=f"the checkpoint's signature does not verify with key {kid}"):
        verify_proof(proof, {kid: other})
    with pytest.raises(ProofInvalid, match=f"signed by key {kid}, which is not among the public keys given"):
        verify_proof(proof, {"0123456789abcdef": other})


# -- appending in a transaction -------------------------------------------------------------------


class Abandoned(Exception):
    """The transaction's work failed after the entries were appended."""


def test_entries_appended_in_a_transaction_that_rolls_back_leave_no_trace(workspace: Workspace) -> None:
    append_decisions(workspace.engine, 250)

    def subtrees(connection: Connection) -> list[tuple[int, int]]:
        return sorted(tuple(row) for row in connection.execute(select(log_subtrees.c.height, log_subtrees.c.position)))

    def state() -> tuple[int, bytes, int, list[tuple[int, int]]]:
        with workspace.engine.connect() as connection:
            frontier = head(connection, LIBRARY)
            return (frontier.size, frontier.root(), row_count(connection, decision_log), subtrees(connection))

    before = state()
    with pytest.raises(Abandoned), workspace.engine.begin() as connection:
        append(connection, LIBRARY, DAY, [decision_entry(decision(250 + n), TIME) for n in range(10)])
        assert head(connection, LIBRARY).size == 260 and subtrees(connection) == cached_subtrees(260)
        raise Abandoned

    assert state() == before
    assert before[0] == before[2] == 250 and before[3] == cached_subtrees(250)
    # the rolled-back append had cached the subtrees that end at entry 255, 0–255 among them
    assert sorted(set(cached_subtrees(260)) - set(before[3])) == [(h, 255 >> h) for h in range(CACHED_HEIGHT, 9)]
    append_decisions(workspace.engine, 10)
    with workspace.engine.connect() as connection:
        indexes = list(connection.execute(select(decision_log.c.idx).order_by(decision_log.c.idx)).scalars())
    assert indexes == list(range(260))
    sign(workspace)
    assert verdict(workspace.engine) == LogVerdict(LIBRARY, entries=260, checkpoints=1)


# -- entries --------------------------------------------------------------------------------------


def assert_schema_1_and_canonical(entry: dict[str, Any]) -> None:
    body = canonical(entry)
    LogEntry.model_validate(entry)
    assert canonical(json.loads(body)) == body


def test_every_entry_a_run_logs_is_a_canonical_schema_1_entry_with_personal_facts_withheld(
    workspace: Workspace, ruleset: Ruleset
) -> None:
    foreigner = reader(
        "kntb",
        "KN-FOREIGN-1",
        category="external",
        birth_date="1980-01-01",
        renewed_at="2026-06-01",
        last_activity_at="2026-11-01",
        debt=0,
        active_loans=0,
        personal={
            "first_name": "John",
            "last_name": "Doe",
            "address": "Zlín",
            "id_document": "PAS 1",
            "contact_address": "Zlín",
            "citizenship": "US",
        },
    )
    import_file(workspace, ruleset, SAMPLE)
    import_lines(workspace, ruleset, [foreigner])
    run_all(workspace, ruleset)

    with workspace.engine.connect() as connection:
        texts = list(connection.execute(select(decision_log.c.entry)).scalars())
    entries = [json.loads(body) for body in texts]
    withheld = [
        reason["values"][name]
        for entry in entries
        for reason in entry["reasons"]
        for name in PERSONAL_FACTS & reason["values"].keys()
    ]

    assert {entry["kind"] for entry in entries} == {"decision", "run_summary", "exception_granted"}
    for body, entry in zip(texts, entries, strict=True):
        LogEntry.model_validate(entry)
        assert canonical(entry) == body.encode()
    assert "citizenship" in PERSONAL_FACTS
    assert withheld and set(withheld) == {WITHHELD}
    assert not any("KN-FOREIGN-1" in body or '"US"' in body for body in texts)
    record_ids = {json.loads(line)["id"] for line in SAMPLE.read_text(encoding="utf-8").splitlines()}
    assert not [record for record in record_ids if any(record in body for body in texts)]


def test_a_decision_of_a_dry_run_becomes_an_entry_with_its_citizenship_withheld(
    workspace: Workspace, ruleset: Ruleset
) -> None:
    foreigner = reader(
        "kntb",
        "KN-FOREIGN-2",
        category="external",
        birth_date="1980-01-01",
        renewed_at="2026-06-01",
        last_activity_at="2026-11-01",
        personal={
            "first_name": "Jane",
            "last_name": "Roe",
            "address": "Zlín",
            "id_document": "PAS 2",
            "citizenship": "US",
        },
    )
    import_lines(workspace, ruleset, [foreigner])
    planned = run(workspace, ruleset, "kntb", dry_run=True)
    decisions = [
        {k: v for k, v in d.items() if k != "subject_id"} for d in plan_decisions(workspace.engine, planned.run_id)
    ]

    entries = [decision_entry(d, now()) for d in decisions]

    [rejected] = [e for e in entries if e["rule"] == "kntb.registration.foreigners_residence_permit"]
    for entry in entries:
        assert_schema_1_and_canonical(entry)
    assert rejected["reasons"][0]["values"]["citizenship"] == WITHHELD
    assert decisions[entries.index(rejected)]["reasons"][0]["values"]["citizenship"] == "US"


def test_run_summary_exception_and_proposal_entries_are_canonical_schema_1_entries() -> None:
    user = {"type": "user", "id": "officer-1", "role": "director"}
    entries = [
        run_summary_entry(str(uuid.uuid4()), LIBRARY, RUN, "2026-11-22", "7" * 64, {"reviewed": 3}, True, now()),
        exception_entry(
            str(uuid.uuid4()), LIBRARY, granted=True, exception="e" * 32, subject_type="reader", subject="a" * 32,
            rule="svkpk.retention.after_settlement", role="director", from_="2026-01-01", until="2027-01-01",
            as_of="2026-11-22", actor=user, time=now(),
        ),
        exception_entry(
            str(uuid.uuid4()), LIBRARY, granted=False, exception="e" * 32, subject_type=None, subject=None,
            rule="svkpk.retention.after_settlement", role="director", from_="2026-01-01", until="2027-01-01",
            as_of="2026-11-22", actor=user, time=now(), revision="7" * 64,
        ),
        proposal_entry(
            str(uuid.uuid4()), LIBRARY, proposal=str(uuid.uuid4()), accepted=True, subject_type="reader",
            subject="a" * 32, rule="svkpk.exclusion.repeated_expulsion", cite="čl. 33 odst. 1 a 3",
            action="propose_exclusion", as_of="2026-11-22", actor=user, time=now(),
        ),
    ]  # fmt: skip

    for entry in entries:
        assert_schema_1_and_canonical(entry)
    assert [e["kind"] for e in entries] == ["run_summary", "exception_granted", "exception_revoked", "proposal_decided"]
    assert [e["outcome"] for e in entries] == ["finished", "granted", "revoked", "accepted"]


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda e: e.update(reason="free text"), id="extra-key"),
        pytest.param(lambda e: e.pop("policy_revision"), id="missing-key"),
        pytest.param(lambda e: e.update(version=2), id="another-version"),
    ],
)
def test_an_entry_off_schema_1_does_not_validate(change: Callable[[dict[str, Any]], object]) -> None:
    entry = decision_entry(decision(1), TIME)
    LogEntry.model_validate(entry)
    change(entry)

    with pytest.raises(ValueError):
        LogEntry.model_validate(entry)
