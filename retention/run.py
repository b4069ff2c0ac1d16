"""The nightly run: for each library, plan (evaluate the subjects due) and apply, in batches.

Per library, under its run lock (retention.locking):

1. the subjects due are streamed in batches of `batch_size`, by primary key:
   readers not anonymised and camera recordings whose `next_review` has come
   (all of them with `full`); with each batch, set-based, its exceptions,
   incidents, findings and returned-loan counts;
2. each subject is decided by the rules (trace on: the reasons give the
   deadlines that set its next review date);
3. what the decisions call for is applied through the action registry
   (retention.strategies), each applied action with its instruction to the
   library system (retention.outbox) — or, in a dry run, stored as the plan
   and changed nowhere. A decision is recorded only when it changes something: an action
   applied, a finding or proposal opened, an action retained by an exception
   or legal hold that was not retained already, an error. So a second run at
   the same `as_of` records nothing new.

A batch's actions, instructions, decisions and next review dates commit in one
transaction; if it fails, the batch is redone one subject per transaction,
and a subject that still fails gets an error decision (fail closed) while the
run goes on. A run killed at any moment leaves whole batches committed and the
rest untouched; running again finishes the work.

A run that applies anything may not look ahead: its `as_of` is at most the
library's tomorrow (what it anonymises cannot be undone, so a mistyped year
would destroy readers for good); a dry run may look at any day. A run that
ends with an error is marked `failed` with the error's type (never its
message: it may hold a value), and its lock is released. Each run's summary
names who started it: a user (id and role), the scheduler, or the CLI.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from kodex.audit.entries import decision_entry, now, run_summary_entry
from kodex.audit.log import append, checkpoint, run_entries
from kodex.clock import library_today
from kodex.config import BATCH_SIZE
from kodex.errors import InvalidRequest
from kodex.retention.locking import library_lock
from kodex.retention.outbox import instruction_row
from kodex.retention.review import next_review, policy_changes
from kodex.retention.strategies import STRATEGIES, Loaded, PurgeFailed, Writes
from kodex.retention.subjects import SubjectLoader
from kodex.rules.actions import RETAIN, Effect
from kodex.rules.decision import build_decision
from kodex.rules.evaluator import Outcome, Status, evaluate_subject
from kodex.rules.facts import local_day
from kodex.rules.ruleset import LibraryAt, Ruleset
from kodex.store import Connection, Engine
from kodex.store.crypto import MasterKey
from kodex.store.repositories.instructions import count_by_state
from kodex.store.repositories.runs import (
    close_run,
    last_finished_revision,
    mark_interrupted,
    open_run,
    plan_rows,
    store_plan,
)
from kodex.store.repositories.sweep import Due, drop_old_pages, vacuum_subjects
from kodex.store.repositories.writes import FindingKey, set_next_review, set_reviews

__all__ = [
    "CLI",
    "LOOK_AHEAD",
    "SCHEDULER",
    "LibraryRun",
    "plan_decisions",
    "refuse_look_ahead",
    "run_decisions",
    "run_library",
    "started_by_user",
]

APPLIED, REPORTED, PROPOSED, RETAINED, FAILED, ERROR = "applied", "reported", "proposed", "retained", "failed", "error"
# the instruction counts a run's summary carries: what is still to do, late, refused by the library system (a
# rejected erasure is never overdue, yet the dpo must answer it), failed, or found not carried out
ESCALATED = ("pending", "overdue", "rejected", "failed", "not_carried_out")
DECIDED = frozenset({"accepted", "rejected"})  # a proposal's finding once its deciding role has decided it
log = logging.getLogger("kodex.run")
_BY_EFFECT = {Effect.APPLY: APPLIED, Effect.REPORT: REPORTED, Effect.PROPOSE: PROPOSED}

# How far past the library's today a run that applies anything may decide: one day, so a night started a little
# early, or by a machine whose clock is a few hours off, still runs; a later day is a dry run's only.
LOOK_AHEAD = timedelta(days=1)

Starter = Mapping[str, str | None]  # who started a run, as its summary in the log names it
CLI: Starter = {"type": "cli", "id": None, "role": None}
SCHEDULER: Starter = {"type": "scheduler", "id": None, "role": None}


def started_by_user(user_id: str, role: str) -> Starter:
    return {"type": "user", "id": user_id, "role": role}


@dataclass
class LibraryRun:
    """What a run did (or, dry, would do) in one library."""

    run_id: str
    library: str
    as_of: str
    dry_run: bool
    full: bool
    started_by: Starter
    reviewed: int = 0
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)  # (action, outcome) -> decisions
    planned: int = 0  # a dry run's plan items (stored in plan_items; read back with plan_decisions)
    # the library's instructions to its own system as the run ends: pending, overdue, not_carried_out (escalation)
    instructions: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "reviewed": self.reviewed,
            "decisions": [{"action": a, "outcome": o, "count": n} for (a, o), n in sorted(self.counts.items())],
            "started_by": dict(self.started_by),
            "instructions": dict(self.instructions),
        }


@dataclass
class _Planned:
    subject: Loaded
    action: str
    outcome: str
    decision: dict[str, Any]
    rule: str
    finding: dict[str, Any] | None = None  # the finding row to open or update


def run_library(
    engine: Engine,
    ruleset: Ruleset,
    master: MasterKey,
    library: str,
    as_of: date | datetime,
    *,
    dry_run: bool = False,
    full: bool = False,
    batch_size: int = BATCH_SIZE,
    wait: float = 0.0,
    progress: Callable[[int, int], None] | None = None,
    run_id: str | None = None,
    started_by: Starter = CLI,
    recordings_folder: Path | None = None,
) -> LibraryRun:
    """Run one library's job at `as_of`; `progress(done, total)` is told after each batch.

    Raises InvalidRequest, before anything is done, for a run that would apply decisions past the library's
    tomorrow; any error after the run has begun marks it failed (and is raised again). `recordings_folder`: where
    the library's camera recordings may lie (Settings.recordings); a purge deletes files there only, and without
    it every purge fails (the rows stay).
    """
    refuse_look_ahead(ruleset, library, as_of, dry_run=dry_run)
    run_id = run_id or str(uuid.uuid4())
    compiled = ruleset.library(library)
    day = local_day(as_of, compiled.zone)
    if not full and _policy_changed(engine, library, ruleset.revision):
        full = True  # a new policy may change any subject's outcome: this run reviews everyone
    result = LibraryRun(run_id, library, as_of.isoformat(), dry_run, full, started_by)
    lock = nullcontext() if dry_run else library_lock(engine, library, run_id, wait=wait)
    with lock:
        with engine.begin() as connection:
            if not dry_run:  # holding the lock: a run still marked running was interrupted
                mark_interrupted(connection, library)
            open_run(
                connection, run_id, library, result.as_of, day, dry_run=dry_run, full=full,
                policy_revision=ruleset.revision,
            )  # fmt: skip
        try:
            job = _Job(engine, ruleset, master, compiled.at(day), as_of, result, full, batch_size, recordings_folder)
            total = job.count_due()
            done = 0
            for batch in job.batches():
                job.process(batch)
                done += len(batch)
                if progress is not None:
                    progress(done, total)
            _close(engine, ruleset, master, result, day, "finished")
        except BaseException as error:  # the run did not finish: say so, with the error's type only
            _fail(engine, ruleset, master, result, day, error)
            raise
    if not dry_run and engine.dialect.name == "sqlite":
        drop_old_pages(engine)  # SQLite keeps old page images (a destroyed key among them) in its write-ahead log
    if full and not dry_run and engine.dialect.name == "postgresql":
        vacuum_subjects(engine)  # the sweep's old row versions and dead index entries go, and statistics are fresh
    return result


def refuse_look_ahead(ruleset: Ruleset, library: str, as_of: date | datetime, *, dry_run: bool) -> None:
    """Refuse a run that would apply decisions for a day past the library's tomorrow (a dry run may look anywhere)."""
    if dry_run:
        return
    latest = library_today(ruleset, library) + LOOK_AHEAD
    day = local_day(as_of, ruleset.library(library).zone)
    if day is not None and day > latest:
        raise InvalidRequest(
            f"library {library!r}: as_of is later than {latest.isoformat()} (tomorrow in the library's time zone); "
            "a run that applies decisions may not look ahead, as what it anonymises cannot be undone. To see what "
            'a later day would bring, make it a dry run (kodex run --dry-run, or "dry_run": true)'
        )


def _close(
    engine: Engine,
    ruleset: Ruleset,
    master: MasterKey,
    result: LibraryRun,
    day: date,
    status: Literal["finished", "failed"],
    error: str | None = None,
) -> None:
    """End the run with `status`: its row, and (not dry) its summary in the log and a signed checkpoint.

    The summary counts the library's instructions still to be carried out, late, or found not carried out.
    """
    with engine.begin() as connection:
        counts = count_by_state(connection, result.library, library_today(ruleset, result.library))
        result.instructions = {state: int(counts.get(state, 0)) for state in ESCALATED}
        summary = result.summary()
        if error is not None:
            summary["error"] = error
        close_run(connection, result.run_id, status, summary)
        if not result.dry_run:
            entry = run_summary_entry(
                str(uuid.uuid4()), result.library, result.run_id, result.as_of, ruleset.revision, summary,
                result.full, now(), outcome=status,
            )  # fmt: skip
            append(connection, result.library, day, [entry])
            checkpoint(connection, result.library, master, now())


def _fail(
    engine: Engine,
    ruleset: Ruleset,
    master: MasterKey,
    result: LibraryRun,
    day: date,
    error: BaseException,
) -> None:
    """Mark a run that ended with `error` failed: in the log when the log can still be written, else its row alone."""
    kind = type(error).__name__
    try:
        _close(engine, ruleset, master, result, day, "failed", kind)
        return
    except Exception as logging_failed:  # the store itself may be what failed: at least the row must say so
        log.error("run %s of %s: its failure could not be logged (%s)", result.run_id, result.library,
                  type(logging_failed).__name__)  # fmt: skip
    summary = {**result.summary(), "error": kind}
    try:
        with engine.begin() as connection:
            close_run(connection, result.run_id, "failed", summary)
    except Exception as marking_failed:  # nothing more to do: a later run marks it interrupted
        log.error("run %s of %s: could not be marked failed (%s)", result.run_id, result.library,
                  type(marking_failed).__name__)  # fmt: skip


class _Job:
    def __init__(
        self,
        engine: Engine,
        ruleset: Ruleset,
        master: MasterKey,
        snapshot: LibraryAt,
        as_of: date | datetime,
        result: LibraryRun,
        full: bool,
        batch_size: int,
        recordings_folder: Path | None,
    ) -> None:
        self.engine, self.ruleset, self.master, self.snapshot = engine, ruleset, master, snapshot
        self.as_of, self.result, self.full, self.batch_size = as_of, result, full, batch_size
        self.library = snapshot.library.id
        self.day = snapshot.day
        self.changes = policy_changes(snapshot.library)
        self._sink: list[dict[str, Any]] = []  # a batch's log entries, appended together
        self.loader = SubjectLoader(master, self.library, recordings_folder)
        self.due = Due(self.library, self.day, full, batch_size)

    # -- loading ---------------------------------------------------------------------------

    def count_due(self) -> int:
        with self.engine.connect() as connection:
            return self.due.count(connection)

    def batches(self) -> Iterator[list[Loaded]]:
        yield from self._batches("reader", self.loader.readers)
        yield from self._batches("camera_recording", self.loader.recordings)

    def _batches(
        self, subject_type: str, load: Callable[[Connection, Sequence[Any]], list[Loaded]]
    ) -> Iterator[list[Loaded]]:
        last = 0
        while True:
            with self.engine.connect() as connection:
                rows = self.due.batch(connection, subject_type, last)
                if not rows:
                    return
                last = rows[-1][0]
                loaded = load(connection, rows)
            yield loaded

    # -- deciding ----------------------------------------------------------------------------

    def process(self, batch: list[Loaded]) -> None:
        plans: list[tuple[Loaded, list[_Planned], date, list[str]]] = []
        for subject in batch:
            try:
                planned, review, resolved = self._decide(subject)
            except Exception as error:  # fail closed: this subject is not acted on, the run goes on
                message = f"deciding failed ({type(error).__name__}); not acted on"
                planned, review, resolved = [self._error(subject, message)], _tomorrow(self.day), []
            plans.append((subject, planned, review, resolved))
        self.result.reviewed += len(batch)
        if self.result.dry_run:
            self._store_plan([p for _, planned, _, _ in plans for p in planned])
            return
        self._sink = []
        try:
            with self.engine.begin() as connection:
                writes = Writes(connection)
                reviews = [self._apply(writes, *plan, batched=True) for plan in plans]
                writes.flush()  # each statement once for the batch's rows
                if self._sink:  # the batch's log entries, in the same transaction as their actions
                    append(connection, self.library, self.day, self._sink)
                set_reviews(connection, [r for r in reviews if r is not None], self.as_of.isoformat())
        except Exception:  # redo one subject per transaction, so only the failing subject fails (closed)
            self._sink = []
            for subject, planned, review, resolved in plans:
                self._apply_alone(subject, planned, review, resolved)
            return
        for _, planned, _, _ in plans:
            for p in planned:
                self.result.counts[(p.action, p.outcome)] += 1

    def _decide(self, subject: Loaded) -> tuple[list[_Planned], date, list[str]]:
        grants, history = subject.grants, subject.incidents
        if subject.failure is not None:
            return [self._error(subject, subject.failure)], _tomorrow(self.day), []
        outcomes = evaluate_subject(self.snapshot, subject.record, self.as_of, grants, incidents=history)
        planned: list[_Planned] = []
        standing: set[str] = set()
        for outcome in outcomes:
            rule = outcome.rule.rule
            if outcome.status is Status.ERROR:
                planned.append(self._planned(subject, outcome, RETAIN, ERROR))
            elif outcome.status is Status.BLOCKED:
                standing.add(rule.id)
                basis = f"exception {outcome.exception.id}" if outcome.exception else "legal hold"
                current = subject.findings.get(rule.id)
                if current is None or current.status != "open" or current.action != RETAIN or current.basis != basis:
                    planned.append(self._planned(subject, outcome, RETAIN, RETAINED, basis=basis))
            elif outcome.status is Status.FIRES:
                if rule.effect is Effect.APPLY:
                    if STRATEGIES[rule.action].changes(subject):
                        planned.append(self._planned(subject, outcome, rule.action, APPLIED))
                else:
                    standing.add(rule.id)
                    current = subject.findings.get(rule.id)
                    if current is not None and current.status in DECIDED:
                        continue  # a proposal its deciding role accepted or rejected is not proposed again
                    if current is None or current.status != "open" or current.action != rule.action:
                        planned.append(self._planned(subject, outcome, rule.action, _BY_EFFECT[rule.effect]))
        planned.extend(self._lift_block(subject, outcomes))
        first = next((p for p in planned if p.action == "anonymise"), None)
        if first is not None:  # anonymised once (by the first rule calling for it), and nothing else is done
            planned = [p for p in planned if p is first or p.outcome == ERROR]
            standing = set()  # nothing stands for a reader who is gone: its open findings and proposals close
        resolved = [r for r, row in subject.findings.items() if row.status == "open" and r not in standing]
        review = next_review(self.snapshot, subject.record, outcomes, grants, history, self.changes)
        return planned, review, resolved

    def _lift_block(self, subject: Loaded, outcomes: list[Outcome]) -> list[_Planned]:
        """A blocked reader whose block rules no longer fire has the block lifted (the block ends with its ground)."""
        if subject.subject_type != "reader" or not subject.blocked or subject.excluded:
            return []  # an accepted exclusion keeps the block: no rule lifts it
        blocks = [o for o in outcomes if o.rule.rule.action == "block_services"]
        if not blocks or any(o.status in {Status.FIRES, Status.ERROR} for o in blocks):
            return []
        return [self._planned(subject, blocks[0], "lift_block", APPLIED)]

    def _planned(self, subject: Loaded, outcome: Outcome, action: str, kind: str, basis: str | None = None) -> _Planned:
        decision = build_decision(outcome, subject.record, self.as_of, self.ruleset.revision)
        decision["subject"] = subject.pseudonym
        decision["action"] = action
        decision["outcome"] = kind
        decision["decision_id"] = str(uuid.uuid4())
        decision["run_id"] = self.result.run_id
        rule = outcome.rule.rule
        finding = None
        if kind in {REPORTED, PROPOSED, RETAINED}:
            finding = {"action": action, "effect": rule.effect.value, "basis": basis, "decided_by": rule.decided_by}
        return _Planned(subject, action, kind, decision, rule.id, finding)

    def _error(self, subject: Loaded, message: str) -> _Planned:
        decision = {
            "library": self.library,
            "subject_type": subject.subject_type,
            "subject": subject.pseudonym,
            "rule": "kodex.run",
            "action": RETAIN,
            "outcome": ERROR,
            "as_of": self.as_of.isoformat(),
            "policy_revision": self.ruleset.revision,
            "reasons": [],
            "error": message,
            "decision_id": str(uuid.uuid4()),
            "run_id": self.result.run_id,
        }
        return _Planned(subject, RETAIN, ERROR, decision, "kodex.run")

    # -- applying ----------------------------------------------------------------------------

    def _apply(
        self,
        writes: Writes,
        subject: Loaded,
        planned: list[_Planned],
        review: date,
        resolved: list[str],
        *,
        batched: bool = False,
    ) -> tuple[str, int, date] | None:
        """Apply one subject's decisions; its new review date is returned when `batched`, else written here."""
        for p in planned:
            if p.outcome == APPLIED:
                instruction = self._instruction(subject, p)  # built first: requests it carries out wait for its id
                subject.instruction = str(instruction["id"])
                try:
                    STRATEGIES[p.action].apply(writes, subject, self.master)
                except PurgeFailed as failure:
                    p.outcome = FAILED
                    p.decision["outcome"] = FAILED
                    p.decision["error"] = str(failure)
                    review = _tomorrow(self.day)
                    writes.purge_failed(subject.pk)
                else:  # the library system is told to do the same, in the same transaction (retention.outbox)
                    writes.instruct(instruction)
                finally:
                    subject.instruction = None
            self._record(writes, p, batched)
        for rule in resolved:
            writes.resolve_finding(self._finding_key(subject, rule), self.as_of.isoformat())
        if any(p.action in {"anonymise", "purge"} and p.outcome == APPLIED for p in planned):
            return None
        if batched:
            return (subject.subject_type, subject.pk, review)
        writes.review(subject.subject_type, subject.pk, review, self.as_of.isoformat())
        return None

    def _instruction(self, subject: Loaded, p: _Planned) -> dict[str, Any]:
        return instruction_row(
            self.master, self.snapshot.library, subject_type=subject.subject_type, subject_id=subject.id,
            action=p.action, decision_id=p.decision["decision_id"], rule=p.rule, cite=p.decision.get("cite"),
            day=self.day, at=datetime.now(UTC), request_due=subject.request_due.get(p.action),
        )  # fmt: skip

    def _finding_key(self, subject: Loaded, rule: str) -> FindingKey:
        return FindingKey(self.library, subject.subject_type, subject.pseudonym, rule)

    def _record(self, writes: Writes, p: _Planned, batched: bool = False) -> None:
        """Record the decision (collected for one statement per batch when `batched`) and what it opens."""
        d = p.decision
        entry = decision_entry(d, now())
        if batched:
            self._sink.append(entry)
        else:
            append(writes.connection, self.library, self.day, [entry])
        if p.finding is None:
            return
        key = self._finding_key(p.subject, p.rule)
        if p.rule in p.subject.findings:
            writes.reopen_finding(key, p.finding, d["decision_id"], d["as_of"])
        else:
            writes.open_finding(key, p.finding, d["decision_id"], d["as_of"])

    def _apply_alone(self, subject: Loaded, planned: list[_Planned], review: date, resolved: list[str]) -> None:
        try:
            with self.engine.begin() as connection:
                writes = Writes(connection)
                self._apply(writes, subject, planned, review, resolved)
                writes.flush()
        except Exception as error:  # fail closed: nothing of this subject's actions stays; the error is recorded
            failure = self._error(subject, f"applying the decisions failed ({type(error).__name__}); not acted on")
            with self.engine.begin() as connection:
                writes = Writes(connection)
                self._record(writes, failure)
                writes.flush()
                set_next_review(connection, subject.subject_type, subject.pk, _tomorrow(self.day))
            planned = [failure]
        for p in planned:
            self.result.counts[(p.action, p.outcome)] += 1

    def _store_plan(self, planned: list[_Planned]) -> None:
        if not planned:
            return
        rows = [
            {
                "run_id": self.result.run_id, "library": self.library, "subject_type": p.subject.subject_type,
                "subject": p.subject.pseudonym, "rule": p.rule, "action": p.action, "outcome": p.outcome,
                "decision": p.decision,
            }
            for p in planned
        ]  # fmt: skip
        with self.engine.begin() as connection:
            store_plan(connection, rows)
        for p in planned:
            self.result.counts[(p.action, p.outcome)] += 1
        self.result.planned += len(planned)


def plan_decisions(engine: Engine, run_id: str, limit: int | None = None) -> Iterator[dict[str, Any]]:
    """A dry run's plan, in order, each item with the subject's record id for the officer who reviews it.

    The stored plan names subjects by pseudonym only; the record id is looked up as it is read.
    """
    for row in plan_rows(engine, run_id, limit):
        yield {**row.decision, "subject_id": row.subject_id}


def _policy_changed(engine: Engine, library: str, revision: str) -> bool:
    """True when the library's last finished run decided under another policy revision."""
    last = last_finished_revision(engine, library)
    return last is not None and last != revision


def run_decisions(engine: Engine, run_id: str) -> Iterator[dict[str, Any]]:
    """The decisions a run recorded, as their log entries, in order."""
    return run_entries(engine, run_id)


def _tomorrow(day: date) -> date:
    return day + timedelta(days=1)
