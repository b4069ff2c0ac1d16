"""Throughput of `kodex evaluate` over a synthetic population (prints figures; not a test).

    python -m bench.evaluate_throughput [--readers 100000] [--repeat 3]

Pinned to one core. Reports readers/s for: evaluation alone (facts, every
rule of the reader's library, reasons), evaluation plus building the decision
objects, validation of the JSON lines, and the whole `kodex evaluate`
command end to end (a subprocess, output to /dev/null). Each figure is the
median of --repeat runs.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

from bench.synthetic import population
from bench.timing import median_seconds
from kodex.rules.evaluator import evaluate_subject
from kodex.rules.validation import read_records
from kodex.services.evaluation import evaluate
from kodex.services.policy_source import load_ruleset

AS_OF = date(2026, 11, 22)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readers", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

    ruleset = load_ruleset()
    lines = [json.dumps(r, ensure_ascii=False) for r in population(args.readers, seed=7, as_of=AS_OF)]
    records, problems = read_records(lines, ruleset, AS_OF)
    assert not problems, problems[:3]
    gc.freeze()  # as `kodex evaluate` does once the records are loaded
    readers = records.readers
    snapshots = {lib.id: lib.at(AS_OF) for lib in ruleset.libraries.values()}

    def evaluation_only() -> None:
        for reader in readers:
            evaluate_subject(
                snapshots[reader.library], reader, AS_OF, records.grants_for(reader.library, reader.id), trace_all=False
            )

    def with_decisions() -> None:
        for _ in evaluate(records, ruleset, AS_OF):
            pass

    def validation() -> None:
        read_records(lines, ruleset, AS_OF)

    n = len(readers)
    print(f"kodex evaluate throughput — {n:,} synthetic readers, Python {platform.python_version()}, "
          f"{platform.machine()}, {os.cpu_count()} CPUs (pinned to one core), median of {args.repeat}")  # fmt: skip
    print(
        f"  evaluation (facts, every rule's outcome)   {n / median_seconds(evaluation_only, args.repeat):>10,.0f} readers/s"
    )
    print(
        f"  evaluation + decisions with reasons        {n / median_seconds(with_decisions, args.repeat):>10,.0f} readers/s"
    )
    print(
        f"  validation of JSON lines (pydantic)        {n / median_seconds(validation, args.repeat):>10,.0f} readers/s"
    )

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "readers.jsonl"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        command = [str(Path(sys.executable).parent / "kodex"), "evaluate", "--as-of", AS_OF.isoformat(), str(path)]

        def end_to_end() -> None:
            with open(os.devnull, "w") as sink:
                subprocess.run(command, stdout=sink, check=True)

        print(
            f"  end to end: kodex evaluate FILE > /dev/null {n / median_seconds(end_to_end, args.repeat):>10,.0f} readers/s"
        )


if __name__ == "__main__":
    main()
