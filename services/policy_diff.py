"""A candidate policy's dry-run diff: which decisions would change for the current population if it were adopted.

Every subject of the library that is not anonymised is decided twice as of
the same moment, under the active policy and under the candidate, and each
rule whose outcome differs is listed (fires, blocked, does not apply, error;
a rule only one policy has counts as not applying under the other). Nothing
is written. Subjects are streamed in batches, as a nightly run reads them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from kodex.config import BATCH_SIZE
from kodex.errors import NotInPolicy
from kodex.retention.strategies import Loaded
from kodex.retention.subjects import SubjectLoader
from kodex.rules.evaluator import Status, evaluate_subject
from kodex.rules.facts import local_day
from kodex.rules.ruleset import LibraryAt, Ruleset
from kodex.store.crypto import MasterKey
from kodex.store.database import Connection, Engine
from kodex.store.repositories import readers, recordings

__all__ = ["Change", "PolicyDiff", "policy_diff"]

_NOTHING = ("not_applicable", None)
_Page = Callable[[Connection, str, int, int], Sequence[Any]]  # (library, after key, limit): a batch in key order


@dataclass(frozen=True)
class Change:
    subject_type: str
    subject: str  # the record id
    rule: str
    before: str  # the outcome under the active policy: fires, blocked, not_applicable, error
    after: str
    action_before: str | None
    action_after: str | None


@dataclass
class PolicyDiff:
    library: str
    as_of: str
    active_revision: str
    candidate_revision: str
    subjects: int = 0
    changed_subjects: int = 0
    changes: list[Change] = field(default_factory=list)  # the first `limit`
    counts: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # (rule, before, after) -> subjects


def policy_diff(
    engine: Engine,
    master: MasterKey,
    active: Ruleset,
    candidate: Ruleset,
    library: str,
    as_of: date | datetime,
    *,
    limit: int = 1000,
    batch_size: int = BATCH_SIZE,
) -> PolicyDiff:
    if library not in candidate.libraries:
        raise NotInPolicy(f"the candidate policy has no library {library!r}: adopting it would drop its rules")
    day = local_day(as_of, active.library(library).zone)
    before, after = active.library(library).at(day), candidate.library(library).at(day)
    diff = PolicyDiff(library, as_of.isoformat(), active.revision, candidate.revision)
    loader = SubjectLoader(master, library)
    for subject in _subjects(engine, library, loader, batch_size):
        diff.subjects += 1
        old, new = _outcomes(before, subject, as_of), _outcomes(after, subject, as_of)
        changed = False
        for rule in sorted(set(old) | set(new)):
            was, now = old.get(rule, _NOTHING), new.get(rule, _NOTHING)
            if was[0] == now[0]:
                continue
            changed = True
            diff.counts[(rule, was[0], now[0])] += 1
            if len(diff.changes) < limit:
                diff.changes.append(Change(subject.subject_type, subject.id, rule, was[0], now[0], was[1], now[1]))
        diff.changed_subjects += changed
    return diff


def _outcomes(snapshot: LibraryAt, subject: Loaded, as_of: date | datetime) -> dict[str, tuple[str, str | None]]:
    if subject.failure is not None:
        return {"kodex.load": ("error", None)}
    outcomes = evaluate_subject(snapshot, subject.record, as_of, subject.grants, incidents=subject.incidents)
    return {
        o.rule.id: (o.status.value, o.rule.rule.action if o.status is not Status.NOT_APPLICABLE else None)
        for o in outcomes
    }


def _subjects(engine: Engine, library: str, loader: SubjectLoader, batch_size: int) -> Iterator[Loaded]:
    sources: Sequence[tuple[_Page, Callable[[Connection, Sequence[Any]], list[Loaded]]]] = (
        (readers.page_of_live, loader.readers),
        (recordings.page, loader.recordings),
    )
    for page, load in sources:
        last = 0
        while True:
            with engine.connect() as connection:
                rows = page(connection, library, last, batch_size)
                if not rows:
                    break
                last = rows[-1][0]
                batch = load(connection, rows)
            yield from batch
