"""Use cases over record files: evaluate every subject, explain one reader.

Load → validate → decide. Nothing is decided for a file with an invalid line
unless the caller skips invalid lines; then each skipped line is reported.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from kodex.errors import InvalidRecords, SubjectNotFound
from kodex.rules.decision import build_decision, calls_for_something
from kodex.rules.evaluator import evaluate_subject
from kodex.rules.explain import explain
from kodex.rules.facts import local_day
from kodex.rules.records import CameraRecording, Reader
from kodex.rules.ruleset import Ruleset
from kodex.rules.validation import RecordProblem, RecordSet, read_records

__all__ = ["Validated", "evaluate", "explain_reader", "validate"]


@dataclass(frozen=True)
class Validated:
    records: RecordSet
    skipped: list[RecordProblem]


def validate(lines: Iterable[str], ruleset: Ruleset, as_of: date | datetime, *, skip_invalid: bool) -> Validated:
    day = as_of.date() if isinstance(as_of, datetime) else as_of
    records, problems = read_records(lines, ruleset, day)
    if problems and not skip_invalid:
        raise InvalidRecords(problems)
    return Validated(records, problems)


def evaluate(
    records: RecordSet,
    ruleset: Ruleset,
    as_of: date | datetime,
    *,
    library: str | None = None,
    include_all: bool = False,
    progress: Callable[[int], None] | None = None,
) -> Iterator[dict[str, Any]]:
    """Decisions for every reader and camera recording, in input order (readers first).

    `progress`, when given, is told after each subject how many are done.
    """
    subjects: list[Reader | CameraRecording] = [*records.readers, *records.recordings]
    for done, subject in enumerate(subjects, start=1):
        if progress is not None:
            progress(done)
        if library is not None and subject.library != library:
            continue
        compiled = ruleset.library(subject.library)
        day = local_day(as_of, compiled.zone)
        grants = records.grants_for(subject.library, subject.id)
        incidents = records.incidents_for(subject.library, subject.id) if isinstance(subject, Reader) else ()
        outcomes = evaluate_subject(
            compiled.at(day), subject, as_of, grants, trace_all=include_all, incidents=incidents
        )
        for outcome in outcomes:
            if include_all or calls_for_something(outcome):
                yield build_decision(outcome, subject, as_of, ruleset.revision)


def explain_reader(
    records: RecordSet, ruleset: Ruleset, as_of: date | datetime, reader_id: str, library: str | None = None
) -> list[str]:
    matches = [r for r in records.readers if r.id == reader_id and (library is None or r.library == library)]
    if not matches:
        raise SubjectNotFound(f"no reader with this id{' in library ' + repr(library) if library else ''} in the input")
    if len(matches) > 1:
        raise SubjectNotFound("readers with this id exist in several libraries; give --library")
    reader = matches[0]
    compiled = ruleset.library(reader.library)
    day = local_day(as_of, compiled.zone)
    snapshot = compiled.at(day)
    grants = records.grants_for(reader.library, reader.id)
    incidents = records.incidents_for(reader.library, reader.id)
    outcomes = evaluate_subject(snapshot, reader, as_of, grants, incidents=incidents)
    return explain(reader.id, reader.library, as_of, ruleset.revision, outcomes, snapshot.param_cites)
