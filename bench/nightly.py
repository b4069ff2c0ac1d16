"""The nightly job at 100,000 and 1,000,000 readers against a bare-SQL baseline (prints figures; not a test).

    python -m bench.nightly --readers 100000 [--database-url URL] [--repeat 3] [--keep DIR]
                            [--seed 7] [--batch-size 2000] [--due-share S]

Builds a population (bench/population.py: --readers readers over the three
libraries, about 10 loans each, incidents, four SVK PK cameras recording an
hour a file for 30 days; written straight into a kodex store set up by
`kodex init` with every library onboarded), or reuses the one in --keep DIR.
Without --database-url the store is an SQLite file; with a PostgreSQL URL
(postgresql+psycopg://user@host:5432/db) the population lives in a database
of its own, kodex_bench_<random>, created on that server (and dropped at the
end unless kept).

Each measurement starts from the same state, restored the cheapest honest
way: a copy of the SQLite file, or CREATE DATABASE … TEMPLATE (a file copy)
on PostgreSQL; either way the copy is fresh in the page cache. It runs in a
fresh Python process (not pinned to a core), so its peak RSS (VmHWM) is its
own; the wall time is that of the work (the process's start, imports and
policy loading are shown apart). Measured, each --repeat times, interleaved
(median shown, with the range):

- full sweep: retention.run.run_library(full=True) for every library at
  2026-11-22: plan, apply, log, checkpoint; what `kodex run --full` does;
- incremental night: the next night (2026-11-23) after a full sweep, only
  the subjects due (run_library without full). The population's own dates
  make about 0.2 % of the readers due (birthdays, deadlines) plus the day's
  camera recordings (a recording is due the day its 7 days end and, as the
  night's as_of is midnight, purged the day after: it is reviewed twice);
  --due-share S instead makes exactly the share S of the
  live subjects due: those due by date are moved a day later and a seeded
  sample of readers is made due, as an import of changed records would;
- dry run: run_library(dry_run=True, full=True) at 2026-11-22 (the plan
  only);
- baseline: bench/baseline.py on the same state: the same anonymisations,
  erasures, purges and flags in a few set-based SQL statements, no rules, no
  log: the least any system must spend.

Prints a markdown table (wall time, peak RSS, the wall time over the
baseline's, subjects reviewed, what was changed) with the machine line, and the issue's
targets with whether they are met (they are stated for 1,000,000 readers on
PostgreSQL on a 2-core machine: full sweep at most 3x the baseline and
under 10 minutes; incremental night under 5 s; peak RSS under 1 GiB).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from importlib.metadata import version as package_version
from pathlib import Path

from sqlalchemy import Engine, func, or_, select, text, update
from sqlalchemy.engine import make_url

from bench.baseline import baseline
from bench.population import (
    AS_OF,
    CAMERAS,
    Installation,
    build,
    clone,
    create_database,
    database_url,
    discard,
    drop_database,
)
from bench.timing import cpu_model
from kodex.config import BATCH_SIZE, load_settings
from kodex.retention.run import run_library
from kodex.services.policy_source import load_ruleset
from kodex.services.setup import open_workspace
from kodex.store.schema import camera_recordings, readers

NIGHT = AS_OF + timedelta(days=1)
KINDS = ("full", "incremental", "dry", "baseline")
LABELS = {
    "full": "full sweep (plan, apply, log)",
    "incremental": f"incremental night ({NIGHT})",
    "dry": "dry run (full, plan only)",
    "baseline": "baseline (plain SQL)",
}
MANIFEST = "nightly.json"  # in --keep DIR: what the population there was built with
TARGETS = (1_000_000, 600.0, 3.0, 5.0, 2**30)  # readers, full sweep s, job/baseline, incremental s, peak RSS bytes


@dataclass
class Measured:
    """One measurement, as its process reported it."""

    seconds: float
    setup_seconds: float
    rss_setup_kb: int
    rss_peak_kb: int
    reviewed: int = 0
    changes: dict[str, int] = field(default_factory=dict)


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.nightly", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--readers", type=int, default=100_000, help="readers of the population (default 100,000)")
    parser.add_argument(
        "--database-url",
        help="a PostgreSQL server to run on, in databases kodex_bench_<random> of its own; default: SQLite files",
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs of each measurement; the median is shown")
    parser.add_argument(
        "--keep", type=Path, metavar="DIR", help="build the population in DIR (and keep it), or reuse the one there"
    )
    parser.add_argument("--seed", type=int, default=7, help="seed of the population (default 7)")
    parser.add_argument(
        "--batch-size", type=int, default=BATCH_SIZE, help=f"subjects per batch of the job (default {BATCH_SIZE})"
    )
    parser.add_argument(
        "--due-share", type=float, help="share of live subjects due on the incremental night (default: as dated)"
    )
    parser.add_argument("--measure", choices=KINDS, help=argparse.SUPPRESS)  # the measuring process itself
    args = parser.parse_args()
    if args.measure is not None:
        _measure_here(args.measure, args.batch_size)
        return
    if args.readers < 1 or args.repeat < 1 or args.batch_size < 1:
        parser.error("--readers, --repeat and --batch-size must be at least 1")
    if args.due_share is not None and not 0 < args.due_share <= 1:
        parser.error("--due-share is a share of the live subjects, above 0 and at most 1")

    with _population(args) as (population, built):
        print(f"Nightly job — {args.readers:,} readers (seed {args.seed}), as of {AS_OF}, {_engine_name(population)}")
        print(f"  Python {platform.python_version()}, {cpu_model()}, {os.cpu_count()} cores, {platform.platform()}")
        print(f"  population: {built}", flush=True)
        results = _measure_all(population, args)
    _report(results, args)


# -- the population ------------------------------------------------------------------------------------------


@contextmanager
def _population(args: argparse.Namespace) -> Iterator[tuple[Installation, str]]:
    """The population's installation (built, or reused from --keep DIR), and how it came to be."""
    identity = {
        "readers": args.readers,
        "seed": args.seed,
        "cameras": len(CAMERAS),
        "database": "sqlite" if args.database_url is None else _hidden(args.database_url),
    }
    if args.keep is None:
        with tempfile.TemporaryDirectory(prefix="kodex-nightly-") as tmp:
            installation, built = _build(Path(tmp), args)
            try:
                yield installation, built
            finally:
                if installation.server_url is not None:
                    discard(installation)
        return
    directory: Path = args.keep.expanduser().resolve()
    manifest = directory / MANIFEST
    if manifest.exists():
        stored = json.loads(manifest.read_text(encoding="utf-8"))
        if stored.get("identity") != identity:
            raise SystemExit(f"{directory} holds a population built otherwise ({stored.get('identity')}); "
                             "give the same options, or another --keep directory")  # fmt: skip
        kept = stored["installation"]
        installation = Installation(Path(kept["home"]), kept["database_url"], Path(kept["key_file"]), args.database_url)
        yield installation, f"reused from {directory} (built in {stored['seconds']:,.0f} s)"
        return
    if directory.exists() and any(directory.iterdir()):
        raise SystemExit(f"{directory} is neither empty nor a population this benchmark built ({MANIFEST})")
    directory.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    try:
        installation, built = _build(directory, args)
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)  # it was empty: leave no half-built population behind
        raise
    record = {
        "identity": identity,
        "seconds": time.perf_counter() - started,
        "installation": {
            "home": str(installation.home),
            "database_url": installation.database_url,
            "key_file": str(installation.key_file),
        },
    }
    manifest.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    yield installation, f"{built}; kept in {directory}"


def _build(directory: Path, args: argparse.Namespace) -> tuple[Installation, str]:
    url = None
    if args.database_url is not None:
        if make_url(args.database_url).get_backend_name() != "postgresql":
            raise SystemExit("--database-url names a PostgreSQL server (the default store is an SQLite file)")
        name = f"kodex_bench_{os.urandom(6).hex()}"
        create_database(args.database_url, name)
        url = database_url(args.database_url, name)
    started = time.perf_counter()
    try:
        installation = build(directory / "population", url, args.readers, args.seed, server_url=args.database_url)
    except BaseException:
        if url is not None:
            drop_database(args.database_url, make_url(url).database or "")
        raise
    return installation, f"built in {time.perf_counter() - started:,.0f} s"


# -- measuring ------------------------------------------------------------------------------------------------


def _measure_all(population: Installation, args: argparse.Namespace) -> dict[str, list[Measured]]:
    """Every measurement --repeat times, each on a fresh copy of its starting state, interleaved."""
    results: dict[str, list[Measured]] = {kind: [] for kind in KINDS}
    work = args.keep.expanduser().resolve() / "runs" if args.keep else None
    if work is not None:
        work.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="kodex-nightly-runs-", dir=work) as tmp:
        swept: Installation | None = None
        try:
            for repeat in range(1, args.repeat + 1):
                for kind in KINDS:
                    source = swept if kind == "incremental" else population
                    assert source is not None
                    started = time.perf_counter()
                    copy = clone(source, Path(tmp) / f"{kind}-{repeat}")
                    _progress(f"{kind} {repeat}/{args.repeat}: store restored in {time.perf_counter() - started:.1f} s")
                    try:
                        measured = _measure(copy, kind, args.batch_size)
                    except BaseException:
                        discard(copy)
                        raise
                    results[kind].append(measured)
                    _progress(f"{kind} {repeat}/{args.repeat}: {measured.seconds:,.2f} s, "
                              f"peak RSS {measured.rss_peak_kb / 1024:,.0f} MB, {measured.reviewed:,} reviewed")  # fmt: skip
                    if kind == "full" and swept is None:  # the state after a full sweep: where a next night starts
                        swept = copy
                        _due_on_the_night(swept, args.due_share, args.seed)
                    else:
                        discard(copy)
        finally:
            if swept is not None:
                discard(swept)
    return results


def _measure(installation: Installation, kind: str, batch_size: int) -> Measured:
    """One measurement in a fresh process on `installation`'s store."""
    command = [sys.executable, "-m", "bench.nightly", "--measure", kind, "--batch-size", str(batch_size)]
    done = subprocess.run(command, env=installation.env(), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"the {kind} measurement failed (exit status {done.returncode})")
    return Measured(**json.loads(done.stdout.strip().splitlines()[-1]))


def _measure_here(kind: str, batch_size: int) -> None:
    """In the measuring process: set up as `kodex run` does, do the work, print what it took as one JSON line."""
    started = time.perf_counter()
    settings = load_settings()
    ruleset = load_ruleset(settings.policy)
    work = open_workspace(settings)
    setup = time.perf_counter() - started
    rss_setup = _peak_rss_kb()
    reviewed, changes = 0, Counter[str]()
    started = time.perf_counter()
    if kind == "baseline":
        changes.update(baseline(work.engine, AS_OF))
    else:
        for library in ruleset.libraries:
            result = run_library(
                work.engine, ruleset, work.master, library, NIGHT if kind == "incremental" else AS_OF,
                dry_run=kind == "dry", full=kind != "incremental", batch_size=batch_size,
                recordings_folder=settings.recordings.folder(library),
            )  # fmt: skip
            reviewed += result.reviewed
            for (action, outcome), n in result.counts.items():  # what was (dry: would be) changed, and what failed
                if outcome == "applied":
                    changes[action] += n
                elif outcome in {"failed", "error"}:
                    changes[f"{action} {outcome}"] += n
    seconds = time.perf_counter() - started
    peak = _peak_rss_kb()
    work.engine.dispose()
    measured = Measured(seconds, setup, rss_setup, peak, reviewed, dict(changes))
    print(json.dumps(measured.__dict__))


def _peak_rss_kb() -> int:
    """This process's peak RSS in kB: VmHWM, which an exec starts afresh.

    Not getrusage's ru_maxrss: Linux carries it over an exec, so a process started from a large one (the parent
    that built the population) would report the parent's size.
    """
    try:
        for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux; elsewhere the best there is


def _due_on_the_night(swept: Installation, share: float | None, seed: int) -> None:
    """With a --due-share: exactly that share of the live subjects due on NIGHT (see the module's docstring)."""
    if share is None:
        return
    settings = load_settings(swept.env())
    engine = open_workspace(settings).engine
    try:
        with engine.begin() as connection:
            live_readers = readers.c.state != "anonymised"
            for table, live in ((readers, live_readers), (camera_recordings, None)):
                due = or_(table.c.next_review.is_(None), table.c.next_review <= NIGHT)
                where = due if live is None else (due & live)
                connection.execute(update(table).where(where).values(next_review=NIGHT + timedelta(days=1)))
            keys = list(connection.execute(select(readers.c.rid).where(live_readers).order_by(readers.c.rid)).scalars())
            recordings = connection.execute(select(func.count()).select_from(camera_recordings)).scalar_one()
            wanted = min(len(keys), math.ceil(share * (len(keys) + recordings)))
            picked = random.Random(f"{seed}/due").sample(keys, wanted)
            for first in range(0, len(picked), 10_000):
                chunk = picked[first : first + 10_000]
                connection.execute(update(readers).where(readers.c.rid.in_(chunk)).values(next_review=None))
        _progress(f"incremental night: {wanted:,} of {len(keys) + recordings:,} live subjects made due ({share:.3%})")
    finally:
        engine.dispose()
    if engine.dialect.name == "sqlite":  # leave the file whole for the copies made of it
        engine = open_workspace(settings).engine
        with engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        engine.dispose()


# -- the report ----------------------------------------------------------------------------------------------


def _report(results: dict[str, list[Measured]], args: argparse.Namespace) -> None:
    median = {kind: statistics.median(m.seconds for m in runs) for kind, runs in results.items()}
    peak = {kind: statistics.median(m.rss_peak_kb for m in runs) * 1024 for kind, runs in results.items()}
    base = median["baseline"]
    runs = args.repeat
    print(f"\n| measurement (median of {runs}) | wall time | peak RSS | job / baseline | reviewed | changed |")
    print("|---|---:|---:|---:|---:|---|")
    for kind in KINDS:
        first = results[kind][0]
        spread = f" ({min(m.seconds for m in results[kind]):,.2f}–{max(m.seconds for m in results[kind]):,.2f})"
        ratio = f"{median[kind] / base:,.1f}x" if base > 0 else "–"
        changes = sorted(((what, n) for what, n in first.changes.items() if n), key=lambda c: -c[1])
        changed = ", ".join(f"{what} {n:,}" for what, n in changes)
        reviewed = "–" if kind == "baseline" else f"{first.reviewed:,}"
        print(f"| {LABELS[kind]} | {median[kind]:,.2f} s{spread if runs > 1 else ''} | {peak[kind] / 2**20:,.0f} MB "
              f"| {ratio} | {reviewed} | {changed} |")  # fmt: skip
    setup = statistics.median(m.setup_seconds for runs_ in results.values() for m in runs_)
    rss_setup = statistics.median(m.rss_setup_kb for runs_ in results.values() for m in runs_)
    print(f"\nEach in a fresh process; its start (imports, the policy, the store opened) took {setup:.1f} s and "
          f"{rss_setup / 1024:,.0f} MB of the peak RSS, and is not in the wall time. Batches of {args.batch_size}.")  # fmt: skip
    readers_target, full_target, ratio_target, night_target, rss_target = TARGETS
    where = "PostgreSQL" if args.database_url else "SQLite"
    stated = args.readers >= readers_target and args.database_url is not None
    print(f"\nTargets ({'met or not, as stated' if stated else 'stated for 1,000,000 readers on PostgreSQL; here ' + f'{args.readers:,} on {where}, for orientation'}):")  # fmt: skip
    worst_rss = max(peak.values())
    for label, value, target, ok in (
        ("full sweep / baseline", f"{median['full'] / base:,.1f}x", f"≤ {ratio_target:g}x", median["full"] / base <= ratio_target),
        ("full sweep", f"{median['full']:,.0f} s", f"< {full_target:,.0f} s", median["full"] < full_target),
        ("incremental night", f"{median['incremental']:,.2f} s", f"< {night_target:g} s", median["incremental"] < night_target),
        ("peak RSS", f"{worst_rss / 2**20:,.0f} MB", f"< {rss_target / 2**20:,.0f} MB", worst_rss < rss_target),
    ):  # fmt: skip
        print(f"  {label:<24}{value:>12}   target {target:<10} {'met' if ok else 'NOT MET'}")


def _engine_name(installation: Installation) -> str:
    settings = load_settings(installation.env())
    engine: Engine = open_workspace(settings).engine
    try:
        with engine.connect() as connection:
            if engine.dialect.name == "postgresql":
                version = connection.execute(text("SHOW server_version")).scalar_one()
                return f"PostgreSQL {version} (psycopg {package_version('psycopg')})"
            version = connection.execute(text("SELECT sqlite_version()")).scalar_one()
            return f"SQLite {version} (WAL, synchronous=NORMAL), a file"
    finally:
        engine.dispose()


def _hidden(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def _progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
