"""What the instruction feed's outbox costs the nightly full sweep (prints figures; not a test).

    python -m bench.outbox --readers 100000 [--database-url URL] [--repeat 3] [--keep DIR] [--seed 7]

The population of bench.nightly (the same options, and --keep shares its populations). Measured on fresh copies of
the same state, interleaved, each in a fresh process: the full sweep as `kodex run --full` does it (every applied
action writes its instruction to the library system in the same transaction, retention.outbox), and the same sweep
with the outbox switched off in that process (Writes.instruct does nothing: what the job cost before issue 18).
Prints the medians, the outbox's share of the sweep (the issue's limit: at most 15 % more), the instructions
written and the rate: instructions per second of the sweep, and per second of the time the outbox adds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import func, select

from bench.nightly import _population, _progress
from bench.population import AS_OF, Installation, clone, discard
from bench.timing import cpu_model
from kodex.config import BATCH_SIZE, load_settings
from kodex.retention.run import run_library
from kodex.services.policy_source import load_ruleset
from kodex.services.setup import open_workspace
from kodex.store.repositories.writes import Writes
from kodex.store.schema import instructions

KINDS = ("with", "without")
LIMIT = 0.15  # issue 18: the outbox may add at most 15 % to the full sweep


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.outbox", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--readers", type=int, default=100_000, help="readers of the population (default 100,000)")
    parser.add_argument("--database-url", help="a PostgreSQL server (databases kodex_bench_<random>); default SQLite")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each measurement; the median is shown")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="build the population in DIR, or reuse the one there")
    parser.add_argument("--seed", type=int, default=7, help="seed of the population (default 7)")
    parser.add_argument("--measure", choices=KINDS, help=argparse.SUPPRESS)  # the measuring process itself
    args = parser.parse_args()
    if args.measure is not None:
        _measure_here(args.measure)
        return
    if args.readers < 1 or args.repeat < 1:
        parser.error("--readers and --repeat must be at least 1")
    args.batch_size, args.due_share = BATCH_SIZE, None  # what bench.nightly's population expects
    with _population(args) as (population, built):
        engine = "SQLite" if population.server_url is None else "PostgreSQL"
        print(f"Outbox cost — {args.readers:,} readers (seed {args.seed}), full sweep as of {AS_OF}, {engine}")
        print(f"  Python {platform.python_version()}, {cpu_model()}, {os.cpu_count()} cores, {platform.platform()}")
        print(f"  population: {built}", flush=True)
        seconds, written = _measure_all(population, args)
    _report(seconds, written)


def _measure_all(population: Installation, args: argparse.Namespace) -> tuple[dict[str, list[float]], int]:
    seconds: dict[str, list[float]] = {kind: [] for kind in KINDS}
    written = 0
    work = args.keep.expanduser().resolve() / "runs" if args.keep else None
    if work is not None:
        work.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="kodex-outbox-", dir=work) as tmp:
        for repeat in range(1, args.repeat + 1):
            for kind in KINDS:
                copy = clone(population, Path(tmp) / f"{kind}-{repeat}")
                try:
                    command = [sys.executable, "-m", "bench.outbox", "--measure", kind]
                    done = subprocess.run(command, env=copy.env(), capture_output=True, text=True, check=False)
                    if done.returncode != 0:
                        sys.stderr.write(done.stderr)
                        raise SystemExit(f"the {kind} measurement failed (exit status {done.returncode})")
                    measured = json.loads(done.stdout.strip().splitlines()[-1])
                finally:
                    discard(copy)
                seconds[kind].append(measured["seconds"])
                if kind == "with":
                    written = measured["instructions"]
                elif measured["instructions"]:
                    raise SystemExit("the sweep without the outbox wrote instructions: the switch did not hold")
                _progress(f"{kind} outbox {repeat}/{args.repeat}: {measured['seconds']:,.2f} s, "
                          f"{measured['instructions']:,} instructions")  # fmt: skip
    return seconds, written


def _measure_here(kind: str) -> None:
    """In the measuring process: the full sweep of every library, with or without the outbox; one JSON line."""
    if kind == "without":
        Writes.instruct = lambda self, row: None  # type: ignore[method-assign]  # the job as it was before issue 18
    settings = load_settings()
    ruleset = load_ruleset(settings.policy)
    work = open_workspace(settings)
    started = time.perf_counter()
    for library in ruleset.libraries:
        run_library(
            work.engine, ruleset, work.master, library, AS_OF, full=True,
            recordings_folder=settings.recordings.folder(library),
        )  # fmt: skip
    seconds = time.perf_counter() - started
    with work.engine.connect() as connection:
        count = connection.execute(select(func.count()).select_from(instructions)).scalar_one()
    work.engine.dispose()
    print(json.dumps({"seconds": seconds, "instructions": count}))


def _report(seconds: dict[str, list[float]], written: int) -> None:
    with_, without = statistics.median(seconds["with"]), statistics.median(seconds["without"])
    added = with_ - without
    share = added / without if without else 0.0
    print()
    print("| full sweep | wall (median) | range |")
    print("|---|---:|---:|")
    for kind in KINDS:
        values = seconds[kind]
        print(f"| {kind} the outbox | {statistics.median(values):,.2f} s | {min(values):,.2f}–{max(values):,.2f} s |")
    print()
    print(f"instructions written: {written:,}; {written / with_:,.0f} per second of the sweep", end="")
    print(f", {written / added:,.0f} per second of the time the outbox adds" if added > 0 else "")
    verdict = "met" if share <= LIMIT else "NOT met"
    print(f"the outbox adds {added:,.2f} s, {share:+.1%} of the sweep without it (limit +{LIMIT:.0%}): {verdict}")


if __name__ == "__main__":
    main()
