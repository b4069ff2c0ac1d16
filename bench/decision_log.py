"""The decision log in a store: appending, verifying and proving a million entries (prints figures; not a test).

    python -m bench.decision_log [--entries 1000000] [--database-url URL] [--batch 500] [--proofs 1000]

Without --database-url the log is a fresh SQLite file in a temporary
directory; with a PostgreSQL URL (postgresql+psycopg://user@host:5432/db) it
lives in a schema of its own, kodex_bench_<random>, dropped at the end. Either
way the store is created with store.database.connect and upgrade, under a
random master key. The Python process is pinned to one core (a PostgreSQL
server keeps the others).

The entries are real decisions: the rules of policies.yaml decide a seeded
synthetic population (bench/synthetic.py), rules.decision.build_decision
builds each decision, and every entry is one of those with its own id,
subject pseudonym and run, made into a log entry by audit.entries.decision_entry.
Most entries are SVK PK's (80 %; KNTB 15 %, Ždírec 5 %), as one large library
carries most of a real log. Reports:

- appending: entries/s of building the entries and of audit.log.append, in
  transactions of --batch entries of one library, as the nightly run commits
  them; a signed checkpoint (audit.log.checkpoint) of every library that
  grew, every 100,000 entries and at the end;
- verifying: audit.verify.verify_log over the whole log, the work of
  `kodex audit verify`, each time in a fresh process: the median of 3 runs
  (1 when the first takes over 60 s) and the process's peak RSS;
- proofs of --proofs random entries: audit.log.prove from the store (a
  connection from the pool each time, as a request would) and
  audit.verify.verify_proof offline, median and p99; the size of the proof
  JSON (compact, UTF-8) and of its inclusion path (32 bytes a hash).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from importlib.metadata import version as package_version
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from bench.synthetic import population
from bench.timing import cpu_model
from kodex.audit.entries import canonical, decision_entry, now
from kodex.audit.keys import public_keys
from kodex.audit.log import append, checkpoint, prove
from kodex.audit.verify import verify_log, verify_proof
from kodex.rules.decision import build_decision
from kodex.rules.evaluator import Status, evaluate_subject
from kodex.rules.records import CameraRecording, Reader
from kodex.rules.validation import read_records
from kodex.services.policy_source import load_ruleset
from kodex.store.crypto import MasterKey
from kodex.store.database import connect, ensure_master_key, upgrade

AS_OF = date(2026, 11, 22)
SHARES = {"svkpk": 0.80, "kntb": 0.15, "zdirec": 0.05}  # one large library carries most of the log
CHECKPOINT_EVERY = 100_000
PROGRESS_EVERY = 50_000
RUN_SIZE = 20_000  # entries of one library's nightly run: they share a run id
LONG_VERIFY = 60.0  # seconds: one verification run only when the first takes longer
_OUTCOME = {"apply": "applied", "report": "reported", "propose": "proposed"}


@dataclass
class Appended:
    """What the appending phase measured, and the ids of the entries picked for proofs."""

    entries: int = 0
    entry_bytes: int = 0
    building: float = 0.0
    appending: float = 0.0
    checkpoint_times: list[float] = field(default_factory=list)
    by_library: Counter[str] = field(default_factory=Counter)
    picked: list[str] = field(default_factory=list)


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.decision_log", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--entries", type=int, default=1_000_000, help="entries to append (default 1,000,000)")
    parser.add_argument(
        "--database-url",
        help="a PostgreSQL URL to run on, in a schema of its own (dropped afterwards); default: a temporary SQLite file",
    )
    parser.add_argument("--batch", type=int, default=500, help="entries per transaction, as the nightly run commits")
    parser.add_argument("--proofs", type=int, default=1000, help="random entries to prove and verify")
    parser.add_argument("--seed", type=int, default=7, help="seed of the entries, their libraries and the proofs")
    args = parser.parse_args()
    if args.entries < 1 or args.batch < 1 or args.proofs < 1:
        parser.error("--entries, --batch and --proofs must be at least 1")
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    rng = random.Random(args.seed)

    with _store(args.database_url) as (url, size_of_store):
        engine = connect(url)
        upgrade(engine)
        master = MasterKey(os.urandom(32))
        ensure_master_key(engine, master)
        print(f"Decision log — {args.entries:,} entries in transactions of {args.batch}, {_engine_name(engine)}")
        print(f"  Python {platform.python_version()}, {cpu_model()}, {os.cpu_count()} cores (pinned to one), "
              f"{platform.platform()}", flush=True)  # fmt: skip
        appended = _append(engine, master, args.entries, args.batch, min(args.proofs, args.entries), rng)
        _report_append(appended, size_of_store())
        _verify(url, appended.entries)
        _proofs(engine, appended.picked)
        engine.dispose()


# -- appending ---------------------------------------------------------------------------------------


def _append(engine: Engine, master: MasterKey, n: int, batch: int, proofs: int, rng: random.Random) -> Appended:
    done = Appended()
    grown: set[str] = set()
    started = time.perf_counter()
    for library, decisions in _batches(n, batch, proofs, rng, done.picked):
        start = time.perf_counter()
        entries = [decision_entry(decision, now()) for decision in decisions]
        middle = time.perf_counter()
        with engine.begin() as connection:
            append(connection, library, AS_OF, entries)
        done.appending += time.perf_counter() - middle
        done.building += middle - start
        done.entry_bytes += sum(len(canonical(entry)) for entry in entries)
        done.entries += len(entries)
        done.by_library[library] += len(entries)
        grown.add(library)
        if done.entries % CHECKPOINT_EVERY < len(entries) or done.entries == n:
            for name in sorted(grown):
                start = time.perf_counter()
                with engine.begin() as connection:
                    checkpoint(connection, name, master, now())
                done.checkpoint_times.append(time.perf_counter() - start)
            grown.clear()
        if done.entries % PROGRESS_EVERY < len(entries) or done.entries == n:
            rate = done.entries / (time.perf_counter() - started)
            _progress(f"appended {done.entries:,} of {n:,} ({rate:,.0f} entries/s)")
    return done


def _batches(
    n: int, batch: int, proofs: int, rng: random.Random, picked: list[str]
) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """(library, decisions) for each transaction; the ids of `proofs` random decisions are added to `picked`."""
    pool = _decisions()
    libraries, weights = list(SHARES), list(SHARES.values())
    chosen = set(rng.sample(range(n), proofs))
    runs: dict[str, tuple[str, int]] = {}  # library -> (run id, entries left in that run)
    for first in range(0, n, batch):
        library = rng.choices(libraries, weights)[0]
        count = min(batch, n - first)
        run_id, left = runs.get(library) or (str(uuid.uuid4()), RUN_SIZE)
        runs[library] = (run_id, left - count) if left > count else (str(uuid.uuid4()), RUN_SIZE)
        decisions = []
        for position in range(first, first + count):
            decision = dict(rng.choice(pool[library]))
            decision["decision_id"] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            decision["subject"] = f"{rng.getrandbits(128):032x}"  # a pseudonym, as store.codec.new_pseudonym
            decision["run_id"] = run_id
            decisions.append(decision)
            if position in chosen:
                picked.append(decision["decision_id"])
        yield library, decisions


def _decisions() -> dict[str, list[dict[str, Any]]]:
    """Decisions the policy takes on a synthetic population (readers and SVK PK's recordings), by library."""
    ruleset = load_ruleset()
    lines = [json.dumps(r, ensure_ascii=False) for r in population(4000, seed=7, as_of=AS_OF, cameras=2)]
    records, problems = read_records(lines, ruleset, AS_OF)
    assert not problems, problems[:3]
    snapshots = {library.id: library.at(AS_OF) for library in ruleset.libraries.values()}
    pool: dict[str, list[dict[str, Any]]] = {library: [] for library in SHARES}
    subjects: list[Reader | CameraRecording] = [*records.readers, *records.recordings]
    for subject in subjects:
        grants = records.grants_for(subject.library, subject.id)
        history = records.incidents_for(subject.library, subject.id)
        for outcome in evaluate_subject(snapshots[subject.library], subject, AS_OF, grants, incidents=history):
            if outcome.status not in {Status.FIRES, Status.BLOCKED}:
                continue
            decision = build_decision(outcome, subject, AS_OF, ruleset.revision)
            blocked = outcome.status is Status.BLOCKED
            decision["outcome"] = "retained" if blocked else _OUTCOME[outcome.rule.rule.effect.value]
            pool[subject.library].append(decision)
    return pool


def _report_append(done: Appended, store_bytes: int) -> None:
    n = done.entries
    shares = ", ".join(f"{library} {count:,}" for library, count in done.by_library.most_common())
    _row("entries (canonical JSON)", f"{done.entry_bytes / n:>9,.0f} B ", f"on average; {shares}")
    _row("building entries", f"{n / done.building:>9,.0f}/s", "decision_entry on a decision, time included")
    _row("appending (append + commit)", f"{n / done.appending:>9,.0f}/s", f"entries/s; {done.appending:.1f} s in all")
    total = done.building + done.appending + sum(done.checkpoint_times)
    _row("  the nightly path, all in", f"{n / total:>9,.0f}/s", "building, appending and checkpoints")
    cp = done.checkpoint_times
    _row("checkpoints signed", _ms(statistics.median(cp)), f"median of {len(cp)}, max {max(cp) * 1e3:.1f} ms")
    _row("store size", f"{store_bytes / 2**20:>9,.0f} MB", f"{store_bytes / n:,.0f} B per entry, indexes included")


# -- verifying ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verified:
    seconds: float
    entries: int
    checkpoints: int
    problems: list[str]
    rss_before: int  # kB, ru_maxrss once the process has imported everything
    rss_peak: int


def _verify(url: str, n: int) -> None:
    runs = [_verify_in_fresh_process(url)]
    if runs[0].seconds <= LONG_VERIFY:
        runs += [_verify_in_fresh_process(url) for _ in range(2)]
    for run in runs:
        assert not run.problems and run.entries == n, (run.entries, run.problems[:3])
    seconds = statistics.median(run.seconds for run in runs)
    how = f"median of {len(runs)}" if len(runs) > 1 else f"1 run (over {LONG_VERIFY:.0f} s)"
    _row("verify_log, the whole log", f"{seconds:>9.1f} s ", f"{how}; {n / seconds:,.0f} entries/s, "
         f"{runs[0].checkpoints} checkpoints")  # fmt: skip
    peak = max(run.rss_peak for run in runs)
    before = max(run.rss_before for run in runs)
    _row("  peak RSS of its process", f"{peak / 1024:>9,.0f} MB", f"{before / 1024:,.0f} MB before verify_log began")


def _verify_in_fresh_process(url: str) -> Verified:
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as process:
        return process.submit(_verify_once, url).result()


def _verify_once(url: str) -> Verified:
    engine = connect(url)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    reported: dict[str, int] = {}

    def progress(library: str, done: int, total: int) -> None:
        if done - reported.get(library, 0) >= 250_000:
            reported[library] = done
            _progress(f"verifying {library}: {done:,} of {total:,}")

    start = time.perf_counter()
    verdicts = verify_log(engine, progress=progress)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    engine.dispose()
    return Verified(
        seconds,
        sum(v.entries for v in verdicts),
        sum(v.checkpoints for v in verdicts),
        [problem for v in verdicts for problem in v.problems],
        before,
        peak,
    )


# -- proofs ------------------------------------------------------------------------------------------


def _proofs(engine: Engine, ids: list[str]) -> None:
    with engine.connect() as connection:
        keys = public_keys(connection)
    proving, checking, json_sizes, path_sizes = [], [], [], []
    for entry_id in ids:
        start = time.perf_counter()
        document = prove(engine, entry_id)
        middle = time.perf_counter()
        verify_proof(document, keys)
        checking.append(time.perf_counter() - middle)
        proving.append(middle - start)
        json_sizes.append(len(json.dumps(document, ensure_ascii=False).encode()))
        path_sizes.append(32 * len(document["inclusion_proof"]))
    count = len(ids)
    print(f"  inclusion proofs of {count:,} random entries")
    _row("  prove (from the store)", _ms(statistics.median(proving)), f"median; p99 {_p99(proving) * 1e3:.1f} ms, "
         f"max {max(proving) * 1e3:.1f} ms")  # fmt: skip
    _row("  verify_proof (offline)", _ms(statistics.median(checking)), f"median; p99 {_p99(checking) * 1e3:.2f} ms")
    _row("  proof JSON", _bytes(json_sizes), f"median; {min(json_sizes):,}–{max(json_sizes):,} B")
    _row("  inclusion path", _bytes(path_sizes), f"median; {min(path_sizes) // 32}–{max(path_sizes) // 32} hashes")


# -- the store ---------------------------------------------------------------------------------------


@contextmanager
def _store(database_url: str | None) -> Iterator[tuple[str, Callable[[], int]]]:
    """A fresh store's URL, and a function giving its size in bytes; removed afterwards."""
    if database_url is None:
        with tempfile.TemporaryDirectory(prefix="kodex-bench-") as directory:
            folder = Path(directory)
            yield f"sqlite:///{folder / 'kodex.sqlite3'}", lambda: sum(f.stat().st_size for f in folder.iterdir())
        return
    schema = f"kodex_bench_{uuid.uuid4().hex[:12]}"
    admin = connect(database_url)
    if admin.dialect.name != "postgresql":
        raise SystemExit("--database-url names a PostgreSQL database (the default store is a temporary SQLite file)")
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))

    def size() -> int:
        with admin.connect() as connection:
            return int(
                connection.execute(
                    text(
                        "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
                        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = :s AND c.relkind = 'r'"
                    ),
                    {"s": schema},
                ).scalar_one()
            )

    separator = "&" if "?" in database_url else "?"
    try:
        yield f"{database_url}{separator}options=-csearch_path%3D{schema}", size
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _engine_name(engine: Engine) -> str:
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            version = connection.execute(text("SHOW server_version")).scalar_one()
            return f"PostgreSQL {version} (psycopg {package_version('psycopg')})"
        version = connection.execute(text("SELECT sqlite_version()")).scalar_one()
        return f"SQLite {version} (WAL, synchronous=NORMAL), a temporary file"


# -- printing ----------------------------------------------------------------------------------------


def _row(label: str, value: str, note: str) -> None:
    print(f"  {label:<36}{value}   {note}", flush=True)


def _progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98] if len(values) > 1 else values[0]


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:>9.2f} ms"


def _bytes(sizes: list[int]) -> str:
    return f"{statistics.median(sizes):>9,.0f} B "


if __name__ == "__main__":
    main()
