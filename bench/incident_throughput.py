"""Throughput of the incident rules (durable-rules) over a synthetic population (prints figures; not a test).

    python -m bench.incident_throughput [--readers 20000] [--repeat 3]

Every reader of the three libraries has 1–5 incidents of random kinds over the
last three years (3 on average). Pinned to one core. Reports incidents/s and
readers/s for: the incident rules in force in each reader's library on
durable-rules (`CompiledLibrary.incidents.evaluate`, as the evaluator calls
it), the whole `evaluate_subject` (every rule of the library, incident rules
included), and the plain-Python reference `count_matching` over the same
rules. Each figure is the median of --repeat runs. Before timing, the
durable-rules counts are checked against the reference for every reader.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
from collections.abc import Sequence
from datetime import date
from typing import NamedTuple

from bench.synthetic import population
from bench.timing import median_seconds
from kodex.rules.evaluator import evaluate_subject
from kodex.rules.incident_counts import count_matching
from kodex.rules.records import ExceptionGrant, Incident, Reader
from kodex.rules.ruleset import CompiledRule, LibraryAt
from kodex.rules.validation import read_records
from kodex.services.policy_source import load_ruleset

AS_OF = date(2026, 11, 22)


class Case(NamedTuple):
    """One reader with everything its evaluation needs, looked up before the clock starts."""

    reader: Reader
    snapshot: LibraryAt
    rules: tuple[CompiledRule, ...]
    versions: list[str]
    incidents: Sequence[Incident]
    grants: Sequence[ExceptionGrant]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readers", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

    ruleset = load_ruleset()
    generated = population(args.readers, seed=7, as_of=AS_OF, incident_share=1.0, incidents_per_reader=(1, 5))
    lines = [json.dumps(r, ensure_ascii=False) for r in generated]
    records, problems = read_records(lines, ruleset, AS_OF)
    assert not problems, problems[:3]
    snapshots = {lib.id: lib.at(AS_OF) for lib in ruleset.libraries.values()}
    cases = [
        Case(
            reader,
            snapshots[reader.library],
            snapshots[reader.library].incident_rules,
            [rule.version for rule in snapshots[reader.library].incident_rules],
            records.incidents_for(reader.library, reader.id),
            records.grants_for(reader.library, reader.id),
        )
        for reader in records.readers
    ]
    gc.freeze()  # as `kodex evaluate` does once the records are loaded

    def on_durable_rules() -> None:
        for case in cases:
            library = case.snapshot.library
            library.incidents.evaluate(case.versions, case.incidents, AS_OF, library.zone)

    def through_evaluate_subject() -> None:
        for case in cases:
            evaluate_subject(case.snapshot, case.reader, AS_OF, case.grants, trace_all=False, incidents=case.incidents)

    def plain_python() -> None:
        for case in cases:
            zone = case.snapshot.library.zone
            for rule in case.rules:
                assert rule.pattern is not None
                count_matching(rule.pattern, case.incidents, AS_OF, zone)

    _check_against_reference(cases)
    readers = len(cases)
    incidents = sum(len(case.incidents) for case in cases)
    pairs = sum(len(case.incidents) * len(case.rules) for case in cases)
    proposals = sum(
        count_matching(rule.pattern, case.incidents, AS_OF, case.snapshot.library.zone).holds
        for case in cases
        for rule in case.rules
        if rule.pattern is not None
    )
    print(f"kodex incident rules throughput — {readers:,} synthetic readers with {incidents:,} incidents "
          f"({pairs:,} incident × rule pairs; {proposals:,} rules hold), Python {platform.python_version()}, "
          f"{platform.machine()}, {os.cpu_count()} CPUs (pinned to one core), median of {args.repeat}")  # fmt: skip
    for label, work in (
        ("durable-rules: incident rules in force", on_durable_rules),
        ("evaluate_subject: every rule of the library", through_evaluate_subject),
        ("plain Python: count_matching per rule", plain_python),
    ):
        seconds = median_seconds(work, args.repeat)
        print(f"  {label:<44} {incidents / seconds:>10,.0f} incidents/s {readers / seconds:>10,.0f} readers/s")


def _check_against_reference(cases: Sequence[Case]) -> None:
    """durable-rules counts exactly the incidents count_matching counts, for every reader and rule."""
    for case in cases:
        library = case.snapshot.library
        counted = library.incidents.evaluate(case.versions, case.incidents, AS_OF, library.zone)
        for rule in case.rules:
            assert rule.pattern is not None
            expected = count_matching(rule.pattern, case.incidents, AS_OF, library.zone)
            assert counted[rule.version] == expected, (case.reader.id, rule.id)


if __name__ == "__main__":
    main()
