"""The nightly run: for each library, plan (evaluate the subjects due) and apply, in batches.

Per library, under its run lock (retention.locking):

1. the subjects due are streamed in batches of `batch_size`, by primary key:
   readers not anonymised and camera recordings whose `next_review` has come
   (all of them with `full`); with each batch, set-based, its exceptions,
   incidents, findings and returned-loan counts;
2. each subject is decided by the rules (trace on: the reasons give the
   deadlines that set its next review date);
3. what the decisions call for is applied through the action registry
   (retention.strategies) — or, in a dry run, stored as the plan and changed
   nowhere. A decision is recorded only when it changes something: an action
   applied, a finding or proposal opened, an action retained by an exception
   or legal hold that was not retained already, an error. So a second run at
   the same `as_of` records nothing new.

A batch's actions, decisions and next review dates commit in one
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

from sqlalchemy import Connection, Engine, Table, and_, bindparam, func, select, union_all, update

from kodex.audit.entries import decision_entry, now, run_summary_entry
from kodex.audit.log import append, checkpoint, run_entries
from kodex.clock import library_today
from kodex.config import BATCH_SIZE
from kodex.errors import InvalidRequest
from kodex.retention.locking import library_lock
from kodex.retention.review import next_review, policy_changes
from kodex.retention.strategies import STRATEGIES, Loaded, PurgeFailed, Writes
from kodex.retention.subjects import SubjectLoader
from kodex.rules.actions import RETAIN, Effect
from kodex.rules.decision import build_decision
from kodex.rules.evaluator import Outcome, Status, evaluate_subject
from kodex.rules.facts import local_day
from kodex.rules.ruleset import LibraryAt, Ruleset
from kodex.store.crypto import MasterKey
from kodex.store.schema import LIVE_READER, camera_recordings, findings, plan_items, readers, runs

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

    def summary(self) -> dict[str, Any]:
        return {
            "reviewed": self.reviewed,
            "decisions": [{"action": a, "outcome": o, "count": n} for (a, o), n in sorted(self.counts.items())],
            "started_by": dict(self.started_by),
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
                connection.execute(
                    update(runs)
                    .where(runs.c.library == library, runs.c.status == "running", runs.c.dry_run.is_(False))
                    .values(status="interrupted")
                )
            connection.execute(
                runs.insert().values(
                    id=run_id,
                    library=library,
                    as_of=result.as_of,
                    as_of_day=day,
                    dry_run=dry_run,
                    full=full,
                    policy_revision=ruleset.revision,
                    status="running",
                    started_at=datetime.now(UTC),
                )
            )
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
        _drop_old_pages(engine)
    if full and not dry_run and engine.dialect.name == "postgresql":
        _vacuum_after_sweep(engine)
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
    """End the run with `status`: its row, and (not dry) its summary in the log and a signed checkpoint."""
    summary = result.summary()
    if error is not None:
        summary["error"] = error
    with engine.begin() as connection:
        connection.execute(
            update(runs)
            .where(runs.c.id == result.run_id)
            .values(status=status, finished_at=datetime.now(UTC), summary=summary)
        )
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
            connection.execute(
                update(runs)
                .where(runs.c.id == result.run_id)
                .values(status="failed", finished_at=datetime.now(UTC), summary=summary)
            )
    except Exception as marking_failed:  # nothing more to do: a later run marks it interrupted
        log.error("run %s of %s: could not be marked failed (%s)", result.run_id, result.library,
                  type(marking_failed).__name__)  # fmt: skip


def _vacuum_after_sweep(engine: Engine) -> None:
    """After a full sweep on PostgreSQL: VACUUM (ANALYZE) the subjects' tables, as autovacuum would later.

    The sweep rewrote every live subject's row. Until vacuumed, the old row versions stay on disk (an anonymised
    reader's wrapped key among them: SQLite's pages are dropped at the end of a run for the same reason) and in
    the review index, where the next night's never-reviewed range read through a million dead entries; until
    analysed, PostgreSQL believed most readers never reviewed. 5.0 s at 1,000,000 readers (of a 520 s sweep);
    the next night after it 1.29 s instead of 4.83 s.
    """
    with engine.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT")  # VACUUM runs outside a transaction
        connection.exec_driver_sql(f"VACUUM (ANALYZE) {readers.name}, {camera_recordings.name}")


def _drop_old_pages(engine: Engine) -> None:
    """SQLite keeps old page images in its write-ahead log: fold it back and empty it, so a destroyed key is gone.

    Freed pages of the database file are zeroed too (secure_delete, store.database).
    """
    with engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


_FINDING_FIELDS = ("action", "effect", "basis", "decided_by")
_FINDING = (
    findings.c.library == bindparam("b_library"),
    findings.c.subject_type == bindparam("b_type"),
    findings.c.subject == bindparam("b_subject"),
    findings.c.rule == bindparam("b_rule"),
)
_OPENED: dict[str, Any] = {
    **{name: bindparam(f"b_{name}") for name in _FINDING_FIELDS},
    "status": "open", "decision_id": bindparam("b_decision_id"), "opened_as_of": bindparam("b_opened_as_of"),
    "closed_as_of": None,
}  # fmt: skip
_OPEN = findings.insert().values(
    library=bindparam("b_library"), subject_type=bindparam("b_type"), subject=bindparam("b_subject"),
    rule=bindparam("b_rule"), **_OPENED,
)  # fmt: skip
_REOPEN = update(findings).where(*_FINDING).values(_OPENED)
_RESOLVE = update(findings).where(*_FINDING).values(status="resolved", closed_as_of=bindparam("b_closed_as_of"))
_PURGE_FAILED = (
    update(camera_recordings)
    .where(camera_recordings.c.cid == bindparam("b_pk"))
    .values(purge_failures=camera_recordings.c.purge_failures + 1)
)
_REVIEW = {
    table.name: update(table)
    .where(key == bindparam("b_pk"))
    .values(next_review=bindparam("b_next_review"), reviewed_as_of=bindparam("b_reviewed_as_of"))
    for table, key in ((readers, readers.c.rid), (camera_recordings, camera_recordings.c.cid))
}


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

    # -- loading ---------------------------------------------------------------------------

    def _due(self, table: Table) -> list[tuple[Any, tuple[Any, ...]]]:
        """The subjects due, one index range each (any one of them makes a subject due), with the order to read it in.

        A full run: every live subject, by key. Otherwise those never reviewed (next_review null: new or changed)
        and those whose review date has come, as two ranges of the (library, next_review, key) index: written as
        one OR, SQLite read the library's whole index for each batch. The never-reviewed range is read in the
        index's own order (next_review, key), the same as by key as next_review is null throughout: asked for by
        key alone, PostgreSQL read it from the primary key whenever its statistics still counted many nulls (an
        import's, before autovacuum had run), filtering every reader (seconds at 1,000,000 readers).
        """
        key = table.c.rid if table is readers else table.c.cid
        live = table.c.library == self.library
        if table is readers:
            live = and_(live, LIVE_READER)  # as ix_readers_review says it, so that index serves the ranges
        if self.full:
            return [(live, (key,))]
        return [
            (and_(live, table.c.next_review.is_(None)), (table.c.next_review, key)),
            (and_(live, table.c.next_review <= self.day), (key,)),
        ]

    def count_due(self) -> int:
        with self.engine.connect() as connection:
            return sum(
                connection.execute(select(func.count()).select_from(t).where(condition)).scalar_one()
                for t in (readers, camera_recordings)
                for condition, _ in self._due(t)
            )

    def batches(self) -> Iterator[list[Loaded]]:
        yield from self._batches(readers, readers.c.rid, self.loader.readers)
        yield from self._batches(camera_recordings, camera_recordings.c.cid, self.loader.recordings)

    def _batches(
        self, table: Table, key: Any, load: Callable[[Connection, Sequence[Any]], list[Loaded]]
    ) -> Iterator[list[Loaded]]:
        last = 0
        while True:
            with self.engine.connect() as connection:
                rows = connection.execute(self._next_batch(table, key, last)).all()
                if not rows:
                    return
                last = rows[-1][0]
                loaded = load(connection, rows)
            yield loaded

    def _next_batch(self, table: Table, key: Any, last: int) -> Any:
        """The next batch of subjects due after `last`, by primary key: each index range read apart, then merged."""
        due = self._due(table)
        pages = [select(table).where(c, key > last).order_by(*order).limit(self.batch_size) for c, order in due]
        if len(pages) == 1:
            return pages[0]
        merged = union_all(*(select(page.subquery()) for page in pages)).subquery()
        return select(merged).order_by(merged.c[key.name]).limit(self.batch_size)

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
                self._set_reviews(connection, [r for r in reviews if r is not None])
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

    def _set_reviews(self, connection: Connection, reviews: list[tuple[str, int, date]]) -> None:
        """Every subject's next review date in one statement per table (no round trip per subject)."""
        as_of = self.as_of.isoformat()
        for table, key in ((readers, readers.c.rid), (camera_recordings, camera_recordings.c.cid)):
            rows = [
                {"b_pk": pk, "next_review": day, "reviewed_as_of": as_of} for t, pk, day in reviews if t == table.name
            ]
            if rows:
                connection.execute(update(table).where(key == bindparam("b_pk")), rows)

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
        table = readers if subject.subject_type == "reader" else camera_recordings
        for p in planned:
            if p.outcome == APPLIED:
                try:
                    STRATEGIES[p.action].apply(writes, subject, self.master)
                except PurgeFailed as failure:
                    p.outcome = FAILED
                    p.decision["outcome"] = FAILED
                    p.decision["error"] = str(failure)
                    review = _tomorrow(self.day)
                    writes.add(_PURGE_FAILED, b_pk=subject.pk)
            self._record(writes, p, batched)
        for rule in resolved:
            writes.add(_RESOLVE, **self._finding_key(subject, rule), b_closed_as_of=self.as_of.isoformat())
        if any(p.action in {"anonymise", "purge"} and p.outcome == APPLIED for p in planned):
            return None
        if batched:
            return (table.name, subject.pk, review)
        writes.add(_REVIEW[table.name], b_pk=subject.pk, b_next_review=review, b_reviewed_as_of=self.as_of.isoformat())
        return None

    def _finding_key(self, subject: Loaded, rule: str) -> dict[str, Any]:
        return {
            "b_library": self.library,
            "b_type": subject.subject_type,
            "b_subject": subject.pseudonym,
            "b_rule": rule,
        }

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
        opened = {"b_decision_id": d["decision_id"], "b_opened_as_of": d["as_of"]}
        finding = {f"b_{name}": p.finding.get(name) for name in _FINDING_FIELDS}
        if p.rule in p.subject.findings:
            writes.add(_REOPEN, **self._finding_key(p.subject, p.rule), **finding, **opened)
        else:
            writes.add(_OPEN, **self._finding_key(p.subject, p.rule), **finding, **opened)

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
                table = readers if subject.subject_type == "reader" else camera_recordings
                key = readers.c.rid if table is readers else camera_recordings.c.cid
                connection.execute(update(table).where(key == subject.pk).values(next_review=_tomorrow(self.day)))
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
            connection.execute(plan_items.insert(), rows)
        for p in planned:
            self.result.counts[(p.action, p.outcome)] += 1
        self.result.planned += len(planned)


def plan_decisions(engine: Engine, run_id: str, limit: int | None = None) -> Iterator[dict[str, Any]]:
    """A dry run's plan, in order, each item with the subject's record id for the officer who reviews it.

    The stored plan names subjects by pseudonym only; the record id is looked up as it is read.
    """
    reader = select(readers.c.id).where(readers.c.pseudonym == plan_items.c.subject).scalar_subquery()
    recording = (
        select(camera_recordings.c.id).where(camera_recordings.c.pseudonym == plan_items.c.subject).scalar_subquery()
    )
    query = (
        select(plan_items.c.decision, func.coalesce(reader, recording).label("subject_id"))
        .where(plan_items.c.run_id == run_id)
        .order_by(plan_items.c.pid)
        .limit(limit)
    )
    with engine.connect() as connection:
        for row in connection.execute(query):
            yield {**row.decision, "subject_id": row.subject_id}


def _policy_changed(engine: Engine, library: str, revision: str) -> bool:
    """True when the library's last finished run decided under another policy revision."""
    with engine.connect() as connection:
        last = connection.execute(
            select(runs.c.policy_revision)
            .where(runs.c.library == library, runs.c.status == "finished", runs.c.dry_run.is_(False))
            .order_by(runs.c.started_at.desc())
            .limit(1)
        ).scalar()
    return last is not None and last != revision


def run_decisions(engine: Engine, run_id: str) -> Iterator[dict[str, Any]]:
    """The decisions a run recorded, as their log entries, in order."""
    return run_entries(engine, run_id)


def _tomorrow(day: date) -> date:
    return day + timedelta(days=1)
