"""The least any system must spend: the nightly job's changes as plain, set-based SQL (prints figures; not a test).

    python -m bench.baseline --check [--readers 2000] [--seed 7] [--database-url URL]

`baseline(engine, as_of)` makes, on a store of bench/population.py, the
changes the rules of policies.yaml make to it on `as_of` (a day), with no
rules engine and no decision log: one pass over the live readers that reads
their stored facts (`readers.facts`, JSON) and the tables beside them
(exceptions, legal holds, requests, loans) and keeps what each reader calls
for in a temporary table, then a handful of set-based UPDATE, DELETE and
INSERT … SELECT statements, all in one transaction; no Python per row. It
is what bench/nightly.py measures the job against.

--check proves it makes the same changes: it writes a population (--readers,
default 2,000), copies the store, runs the job (retention.run.run_library,
full, every library) on one copy and the baseline on the other, and compares
the counts and the end states table by table.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, DateTime, Engine, bindparam, func, select, text, update

from bench.population import AS_OF, Installation, build, clone, discard, scratch_database
from kodex.config import load_settings
from kodex.retention.run import run_library
from kodex.rules.periods import Period, add_period, end_of_year
from kodex.services.holds import set_hold
from kodex.services.policy_source import load_ruleset
from kodex.services.requests import file_request
from kodex.services.rule_exceptions import revoke_exception
from kodex.services.setup import open_workspace
from kodex.store.database import connect
from kodex.store.schema import (
    camera_recordings,
    erased_loans,
    exceptions,
    incidents,
    legal_holds,
    loans,
    purged_recordings,
    readers,
    subject_requests,
)

__all__ = ["baseline"]

ZONE = ZoneInfo("Europe/Prague")  # every library of the policy keeps this time zone
ANONYMISED, LOANS_DETACHED, INCIDENTS_DETACHED = "anonymise", "loans detached", "incidents detached"
HISTORIES, LOANS_ERASED, PURGED = "erase_loan_history", "loans erased", "purge"
LAPSED, BLOCKED, LIFTED = "registration_expired", "block_services", "lift_block"


def baseline(engine: Engine, as_of: date) -> Counter[str]:
    """Make the changes the rules would make on `as_of`, in plain SQL; rows changed, by what was done.

    What it does, per policies.yaml (rule ids in the SQL below):

    - anonymise every reader one of the anonymising rules fires for (retention after the library's
      period, one-time registration, erasure on request; no obligations; no active legal hold, from the
      record or set in kodex; no exception in force on a rule that allows exceptions): wrapped key, sealed
      personal data, digest and pseudonym destroyed, state `anonymised`, block cleared; the reader's
      loans and incidents detached (incidents under a new random pseudonym), its exceptions and kodex
      legal holds deleted, its data-subject requests closed and unlinked;
    - erase the returned loans of the Ždírec readers who asked for it (tombstones in `erased_loans`);
    - purge the SVK PK camera recordings whose end is more than 7 days before as_of's midnight, unless
      held or excepted (tombstones in `purged_recordings`);
    - registration lapsed (state `lapsed`), services blocked where a block rule fires, block lifted where
      none does (not for a reader whose exclusion was accepted).

    What it simplifies, knowingly: the guardian's data of readers who turned 15 are not erased (their birth
    date is sealed, so plain SQL cannot tell who turned 15, and erasing means sealing the rest again under
    the data key: work only code holding the master key can do); no recording file is deleted (bench
    populations name files that do not exist; the job tries each one); reports and proposals (findings), next
    review dates, the run record and the decision log are not written, by definition. Record dates are
    compared by their first ten characters (the bench population writes plain dates); the registration and
    retention periods (1 year, 5 years, 24 months, 7 days) are those in force in 2026, written here as the
    cut-off days they give on `as_of`, computed in Python by rules.periods.

    Tuned as a careful engineer would for a one-off job: on PostgreSQL the facts are parsed once per reader
    (jsonb) and JIT compilation is off for the transaction (it costs about a second per large statement and
    saves little on JSON functions); on SQLite the write-ahead log is emptied afterwards, as the job does, so no
    page with a destroyed key is left in it.
    """
    sql = _Dialect(engine.dialect.name)
    params = _cutoffs(as_of)
    done: Counter[str] = Counter()
    with engine.begin() as connection:
        if sql.postgresql:  # compiling these few large statements (JIT) costs more than it saves at this size
            connection.exec_driver_sql("SET LOCAL jit = off")
        _classify(connection, sql, params)
        _anonymise(connection, sql, params, done)
        _erase_histories(connection, params, done)
        _flags(connection, params, done)
        _run(connection, "DROP TABLE baseline_readers", params)
        _purge(connection, sql, params, done)
    if engine.dialect.name == "sqlite":  # as the job does: no page of a destroyed key stays in the write-ahead log
        with engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    return done


# -- the cut-off days --------------------------------------------------------------------------------------


def _cutoffs(as_of: date) -> dict[str, Any]:
    """`as_of > X + P` holds exactly when X is on or before the last day that leaves P behind before as_of."""

    def last(plus: Callable[[date], date]) -> str:
        day = as_of
        while plus(day) >= as_of:  # monotone in the day: walk back to the last one that is over
            day -= timedelta(days=1)
        return day.isoformat()

    year, five_years, two_years = Period.parse("1 year"), Period.parse("5 years"), Period.parse("24 months")

    def registration(day: date) -> date:  # kntb, svkpk: renewed_at + 1 year - 1 day
        return add_period(day, year) - timedelta(days=1)

    zdirec_kept = date.fromisoformat(last(lambda d: add_period(d, five_years)))
    svkpk_kept = date.fromisoformat(last(lambda d: add_period(d, two_years)))
    midnight = datetime.combine(as_of, clock(), ZONE)
    return {
        "day": as_of.isoformat(),
        "day_date": as_of.isoformat(),
        "now": datetime.now(UTC),
        "lapsed_valid": last(lambda d: d),  # as_of > valid_until
        "zdirec_lapsed_renewed": last(end_of_year),  # as_of > end_of_year(renewed_at)
        "zdirec_kept_valid": zdirec_kept.isoformat(),  # as_of > valid_until + 5 years
        "zdirec_kept_renewed": _last_before(end_of_year, zdirec_kept),
        "yearly_lapsed_renewed": last(registration),  # as_of > renewed_at + 1 year - 1 day
        "kntb_unused": last(lambda d: add_period(d, year)),  # as_of > max(last_activity_at, renewed_at) + 1 year
        "svkpk_kept": svkpk_kept.isoformat(),  # as_of > max(valid_until, obligations_settled_at) + 24 months
        "svkpk_kept_renewed": _last_before(registration, svkpk_kept),
        "purge_before": (midnight - timedelta(days=7)).isoformat(),  # as_of_time > end + 7 days
    }


def _last_before(derive: Callable[[date], date], cutoff: date) -> str:
    """The last day whose derived registration end is on or before `cutoff`."""
    day = cutoff
    while derive(day) > cutoff:
        day -= timedelta(days=1)
    return day.isoformat()


# -- the dialects --------------------------------------------------------------------------------------------


class _Dialect:
    """The few expressions that differ between SQLite and PostgreSQL."""

    def __init__(self, name: str) -> None:
        self.postgresql = name == "postgresql"

    def live_readers(self, held: str) -> str:
        """Readers not anonymised, each with `held` (an expression over alias `l`) as column `held`.

        PostgreSQL: each reader's facts parsed once (jsonb), not once per field read; OFFSET 0 keeps the planner
        from folding a subquery into the query around it (which would parse again, and test the hold again).
        """
        columns = "l.rid, l.library, l.id, l.state, l.blocked, l.excluded_as_of, l.facts"
        if self.postgresql:
            parsed = (
                "(SELECT rid, library, id, state, blocked, excluded_as_of, facts::jsonb AS facts FROM readers "
                "WHERE state <> 'anonymised' OFFSET 0)"
            )
            return f"(SELECT {columns}, {held} AS held FROM {parsed} l OFFSET 0)"
        return f"(SELECT {columns}, {held} AS held FROM readers l WHERE l.state <> 'anonymised')"

    def text(self, column: str, *path: str) -> str:
        """A JSON field as text (numbers and booleans too)."""
        if self.postgresql:
            inner = "".join(f" -> '{p}'" for p in path[:-1])
            return f"({column}{inner} ->> '{path[-1]}')"
        return f"json_extract({column}, '$.{'.'.join(path)}')"

    def day(self, column: str, *path: str) -> str:
        return f"substr({self.text(column, *path)}, 1, 10)"

    def number(self, column: str, name: str) -> str:
        value = self.text(column, name)
        return f"CAST({value} AS numeric)" if self.postgresql else value

    def true(self, column: str, name: str) -> str:
        literal = "'true'" if self.postgresql else "1"  # ->> gives JSON true as text; json_extract as 1
        return f"{self.text(column, name)} = {literal}"

    def is_object(self, column: str, *path: str, binary: bool = False) -> str:
        """The JSON value at `path` is an object (`binary`: the column is PostgreSQL jsonb, not json)."""
        if self.postgresql:
            inner = "".join(f" -> '{p}'" for p in path)
            return f"{'jsonb' if binary else 'json'}_typeof({column}{inner}) = 'object'"
        where = "".join(f", '$.{'.'.join(path)}'" for _ in path[:1])
        return f"json_type({column}{where}) = 'object'"

    def day_parameter(self) -> str:
        """as_of's day against a date column (on PostgreSQL a parameter of its own: `:day` is compared as text)."""
        return "CAST(:day_date AS date)" if self.postgresql else ":day"

    def before(self, column: str, parameter: str) -> str:
        """An ISO date-time with offset before another, as instants."""
        if self.postgresql:
            return f"CAST({column} AS timestamptz) < CAST({parameter} AS timestamptz)"
        return f"unixepoch({column}) < unixepoch({parameter})"

    def random_hex(self) -> str:
        return "md5(CAST(gen_random_uuid() AS text))" if self.postgresql else "lower(hex(randomblob(16)))"


# -- the statements ------------------------------------------------------------------------------------------


def _run(connection: Connection, statement: str, params: dict[str, Any]) -> int:
    clause = text(statement)
    if ":now" in statement:  # stored as the job stores it (SQLAlchemy's DateTime, per dialect)
        clause = clause.bindparams(bindparam("now", type_=DateTime(timezone=True)))
    names = set(clause.compile().params)
    return int(connection.execute(clause, {k: v for k, v in params.items() if k in names}).rowcount)


def _held(sql: _Dialect, alias: str, subject_type: str, hold_column: str) -> str:
    """An active legal hold: the record's (a JSON object with `until`) or one set in kodex."""
    if subject_type == "reader":
        record = sql.is_object(hold_column, "legal_hold", binary=True)  # facts: jsonb in _Dialect.live_readers
        until = sql.text(hold_column, "legal_hold", "until")
    else:
        record = sql.is_object(hold_column)
        until = sql.text(hold_column, "until")
    return (  # COALESCE: no hold at all is a JSON path that is not there (NULL), and NOT NULL would drop the row
        f"(COALESCE(({record} AND ({until} IS NULL OR {until} >= :day)), false) OR EXISTS (SELECT 1 FROM legal_holds h "
        f"WHERE h.library = {alias}.library AND h.subject_type = '{subject_type}' AND h.subject = {alias}.id "
        f"AND (h.until IS NULL OR h.until >= {sql.day_parameter()})))"
    )


def _excepted(sql: _Dialect, alias: str, rule: str) -> str:
    """An exception in force on `rule` for the subject (one revoked as of a day applies up to the day before)."""
    return (
        f"EXISTS (SELECT 1 FROM exceptions e WHERE e.library = {alias}.library AND e.subject = {alias}.id "
        f"AND e.rule = '{rule}' AND e.\"from\" <= {sql.day_parameter()} AND e.until >= {sql.day_parameter()} "
        "AND (e.revoked_as_of IS NULL OR substr(e.revoked_as_of, 1, 10) > :day))"
    )


def _requested(sql: _Dialect, field: str, kind: str) -> str:
    """Asked for on or before as_of: in the record, or by a data-subject request still open."""
    return (
        f"({sql.day('r.facts', field)} <= :day OR EXISTS (SELECT 1 FROM subject_requests q "
        f"WHERE q.library = r.library AND q.reader = r.id AND q.kind = '{kind}' AND q.status = 'open' "
        f"AND q.received_on <= {sql.day_parameter()}))"
    )


def _anonymising(sql: _Dialect) -> str:
    """Some anonymising rule fires for reader `r` and is not excepted (policies.yaml, rule ids named)."""
    f = "r.facts"
    no_obligations = f"({sql.number(f, 'debt')} = 0 AND {sql.number(f, 'active_loans')} = 0)"
    erasure = _requested(sql, "erasure_requested_at", "erasure")
    valid, renewed = sql.day(f, "valid_until"), sql.day(f, "renewed_at")
    active, settled = sql.day(f, "last_activity_at"), sql.day(f, "obligations_settled_at")
    zdirec_over = (
        f"(({valid} IS NOT NULL AND {valid} <= :zdirec_kept_valid) "
        f"OR ({valid} IS NULL AND {renewed} <= :zdirec_kept_renewed))"
    )
    kntb_unused = (
        f"(({active} IS NOT NULL OR {renewed} IS NOT NULL) AND ({active} IS NULL OR {active} <= :kntb_unused) "
        f"AND ({renewed} IS NULL OR {renewed} <= :kntb_unused))"
    )
    svkpk_card = f"({valid} IS NOT NULL OR {renewed} IS NOT NULL)"
    svkpk_over = (
        f"(({svkpk_card} OR {settled} IS NOT NULL) "
        f"AND (NOT {svkpk_card} OR ({valid} IS NOT NULL AND {valid} <= :svkpk_kept) "
        f"OR ({valid} IS NULL AND {renewed} <= :svkpk_kept_renewed)) "
        f"AND ({settled} IS NULL OR {settled} <= :svkpk_kept))"
    )
    return f"""{no_obligations} AND (
        (r.library = 'zdirec' AND (
            ({zdirec_over} AND NOT {_excepted(sql, "r", "zdirec.retention.five_years_after_registration")})
            OR {erasure}))
        OR (r.library = 'kntb' AND (
            ({kntb_unused} AND NOT {_excepted(sql, "r", "kntb.retention.unused_for_a_year")})
            OR ({sql.true(f, "one_time")} AND NOT {_excepted(sql, "r", "kntb.retention.one_time_registration")})
            OR {erasure}))
        OR (r.library = 'svkpk' AND (
            ({svkpk_over} AND NOT {_excepted(sql, "r", "svkpk.retention.after_settlement")})
            OR {erasure})))"""


def _history_erasing(sql: _Dialect) -> str:
    """zdirec.loan_history.erase_on_request fires for `r` and would change something (a returned loan or a request)."""
    returned = (
        "EXISTS (SELECT 1 FROM loans o WHERE o.library = r.library AND o.reader = r.id AND o.returned_at IS NOT NULL)"
    )
    open_request = (
        "EXISTS (SELECT 1 FROM subject_requests q WHERE q.library = r.library AND q.reader = r.id "
        "AND q.kind = 'loan_history_erasure' AND q.status = 'open')"
    )
    requested = _requested(sql, "history_erasure_requested_at", "loan_history_erasure")
    return f"(r.library = 'zdirec' AND {requested} AND ({returned} OR {open_request}))"


def _lapsed(sql: _Dialect) -> str:
    """The library's registration-validity rule fires: as_of > valid_until, given or derived (no exceptions)."""
    valid, renewed = sql.day("r.facts", "valid_until"), sql.day("r.facts", "renewed_at")
    given = f"({valid} IS NOT NULL AND {valid} <= :lapsed_valid)"
    return (
        f"({given} OR ({valid} IS NULL AND ((r.library = 'zdirec' AND {renewed} <= :zdirec_lapsed_renewed) "
        f"OR (r.library IN ('kntb', 'svkpk') AND {renewed} <= :yearly_lapsed_renewed))))"
    )


def _blocking(sql: _Dialect) -> str:
    """Some block rule fires for `r` and is not excepted."""
    f = "r.facts"
    return f"""((r.library = 'zdirec' AND {sql.number(f, "debt")} > 0
                AND NOT {_excepted(sql, "r", "zdirec.suspension.unsettled_debt")})
            OR (r.library = 'kntb' AND {sql.number(f, "reminded_loans")} > 0
                AND NOT {_excepted(sql, "r", "kntb.block.reminded_loans")})
            OR (r.library = 'svkpk' AND {sql.number(f, "reminded_ill_loans")} > 0
                AND NOT {_excepted(sql, "r", "svkpk.block.reminded_ill_loans")}))"""


def _classify(connection: Connection, sql: _Dialect, params: dict[str, Any]) -> None:
    """One pass over the live readers: what each one's start state calls for, for the readers it calls for any.

    As in the job, a reader anonymised has nothing else done to it, and the rest is decided on the state before.
    MATERIALIZED: each reader's verdicts are worked out once, not again for every place the query names them.
    """
    _run(
        connection,
        "CREATE TEMPORARY TABLE baseline_readers (rid integer PRIMARY KEY, library text, id text, "
        "anonymise boolean, history boolean, lapse boolean, block boolean, lift boolean)",
        params,
    )
    blocks = f"COALESCE({_blocking(sql)}, false)"
    _run(
        connection,
        f"""WITH x AS MATERIALIZED (
            SELECT r.rid, r.library, r.id,
                   COALESCE(NOT r.held AND {_anonymising(sql)}, false) AS anonymise,
                   COALESCE(NOT r.held AND {_history_erasing(sql)}, false) AS history,
                   COALESCE(r.state = 'active' AND {_lapsed(sql)}, false) AS lapse,
                   NOT r.blocked AND {blocks} AS block,
                   r.blocked AND r.excluded_as_of IS NULL AND NOT {blocks} AS lift
            FROM {sql.live_readers(_held(sql, "l", "reader", "l.facts"))} r)
        INSERT INTO baseline_readers (rid, library, id, anonymise, history, lapse, block, lift)
        SELECT rid, library, id, anonymise, history AND NOT anonymise, lapse AND NOT anonymise,
               block AND NOT anonymise, lift AND NOT anonymise
        FROM x WHERE anonymise OR history OR lapse OR block OR lift""",
        params,
    )
    _run(connection, "CREATE INDEX baseline_readers_id ON baseline_readers (library, id)", params)
    if sql.postgresql:  # temporary tables are never analysed by autovacuum
        _run(connection, "ANALYZE baseline_readers", params)


def _anonymise(connection: Connection, sql: _Dialect, params: dict[str, Any], done: Counter[str]) -> None:
    who = "(library, {}) IN (SELECT library, id FROM baseline_readers WHERE anonymise)"
    done[LOANS_DETACHED] += _run(connection, f"UPDATE loans SET reader = NULL WHERE {who.format('reader')}", params)
    done[INCIDENTS_DETACHED] += _run(
        connection,
        f"UPDATE incidents SET reader = NULL, pseudonym = {sql.random_hex()} WHERE {who.format('reader')}",
        params,
    )
    _run(connection, f"DELETE FROM exceptions WHERE {who.format('subject')}", params)
    _run(connection, f"DELETE FROM legal_holds WHERE subject_type = 'reader' AND {who.format('subject')}", params)
    _run(
        connection,
        "UPDATE subject_requests SET status = 'done', done_at = :now WHERE status = 'open' "
        f"AND kind IN ('erasure', 'loan_history_erasure') AND {who.format('reader')}",
        params,
    )
    _run(connection, f"UPDATE subject_requests SET reader = NULL WHERE {who.format('reader')}", params)
    done[ANONYMISED] += _run(
        connection,
        "UPDATE readers SET wrapped_key = NULL, sealed = NULL, digest = NULL, pseudonym = NULL, state = 'anonymised', "
        "blocked = false, anonymised_at = :now WHERE rid IN (SELECT rid FROM baseline_readers WHERE anonymise)",
        params,
    )


def _erase_histories(connection: Connection, params: dict[str, Any], done: Counter[str]) -> None:
    """zdirec.loan_history.erase_on_request: the returned loans of the readers who asked (tombstones kept)."""
    who = "(library, reader) IN (SELECT library, id FROM baseline_readers WHERE history)"
    done[LOANS_ERASED] += _run(
        connection,
        "INSERT INTO erased_loans (library, id, erased_at) SELECT library, id, :now FROM loans "
        f"WHERE {who} AND returned_at IS NOT NULL",
        params,
    )
    _run(connection, f"DELETE FROM loans WHERE {who} AND returned_at IS NOT NULL", params)
    _run(
        connection,
        "UPDATE subject_requests SET status = 'done', done_at = :now "
        f"WHERE kind = 'loan_history_erasure' AND status = 'open' AND {who}",
        params,
    )
    done[HISTORIES] += _count(connection, "baseline_readers WHERE history")


def _flags(connection: Connection, params: dict[str, Any], done: Counter[str]) -> None:
    """Registration lapsed; services blocked, or the block lifted (not after an accepted exclusion)."""
    for label, change, flag in (
        (LAPSED, "state = 'lapsed'", "lapse"),
        (BLOCKED, "blocked = true", "block"),
        (LIFTED, "blocked = false", "lift"),
    ):
        done[label] += _run(
            connection,
            f"UPDATE readers SET {change} WHERE rid IN (SELECT rid FROM baseline_readers WHERE {flag})",
            params,
        )


def _purge(connection: Connection, sql: _Dialect, params: dict[str, Any], done: Counter[str]) -> None:
    """svkpk.camera.purge_after_7_days: recordings that ended over 7 days before as_of, unless held or excepted."""
    _run(connection, "CREATE TEMPORARY TABLE baseline_purge (cid integer PRIMARY KEY, library text, id text)", {})
    ended = sql.before('c."end"', ":purge_before")
    _run(
        connection,
        "INSERT INTO baseline_purge (cid, library, id) SELECT c.cid, c.library, c.id FROM camera_recordings c "
        f"WHERE c.library = 'svkpk' AND {ended} "
        f"AND NOT ({_held(sql, 'c', 'camera_recording', 'c.legal_hold')}) "
        f"AND NOT {_excepted(sql, 'c', 'svkpk.camera.purge_after_7_days')}",
        params,
    )
    _run(
        connection,
        "INSERT INTO purged_recordings (library, id, purged_at) SELECT library, id, :now FROM baseline_purge",
        params,
    )
    _run(
        connection,
        "DELETE FROM legal_holds WHERE subject_type = 'camera_recording' "
        "AND (library, subject) IN (SELECT library, id FROM baseline_purge)",
        params,
    )
    done[PURGED] += _run(
        connection, "DELETE FROM camera_recordings WHERE cid IN (SELECT cid FROM baseline_purge)", params
    )
    _run(connection, "DROP TABLE baseline_purge", {})


def _count(connection: Connection, table: str) -> int:
    return int(connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


# -- the check against the job -------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.baseline", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="compare the baseline with the job on one population")
    parser.add_argument("--readers", type=int, default=2_000, help="readers of the population (default 2,000)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the population (default 7)")
    parser.add_argument("--database-url", help="a PostgreSQL server to check on (scratch databases); default SQLite")
    args = parser.parse_args()
    if not args.check:
        parser.error("say --check (bench/nightly.py measures the baseline; this module checks it)")
    if args.readers < 1:
        parser.error("--readers must be at least 1")
    sys.exit(0 if check(args.readers, args.seed, args.database_url) else 1)


def check(count: int, seed: int, server_url: str | None = None) -> bool:
    """The job and the baseline on copies of one population: True when they leave the same end state."""
    with tempfile.TemporaryDirectory(prefix="kodex-baseline-check-") as tmp, scratch_database(server_url) as url:
        population = build(Path(tmp) / "home", url, count, seed, progress=_quiet, server_url=server_url)
        seasoned = _season(population, seed)
        by_job, by_baseline = clone(population, Path(tmp) / "job"), clone(population, Path(tmp) / "baseline")
        try:
            job = _job(by_job)
            started = time.perf_counter()
            engine = connect(by_baseline.database_url)
            done = baseline(engine, AS_OF)
            engine.dispose()
            seconds = time.perf_counter() - started
            job_engine, baseline_engine = connect(by_job.database_url), connect(by_baseline.database_url)
            try:
                job.update(_tombstones(job_engine))
                states = _states(job_engine), _states(baseline_engine)
            finally:
                job_engine.dispose()
                baseline_engine.dispose()
        finally:
            discard(by_job)
            discard(by_baseline)
    print(f"{count:,} readers (seed {seed}), as of {AS_OF}, {'PostgreSQL' if server_url else 'SQLite'}; "
          f"baseline {seconds:.2f} s")  # fmt: skip
    print(f"kodex's own data added first: {seasoned}\n")
    print("| change | job | baseline | |\n|---|---:|---:|---|")
    agree = True
    for what in (
        ANONYMISED,
        LOANS_DETACHED,
        INCIDENTS_DETACHED,
        HISTORIES,
        LOANS_ERASED,
        PURGED,
        LAPSED,
        BLOCKED,
        LIFTED,
    ):
        same = job[what] == done[what]
        agree &= same
        print(f"| {what} | {job[what]:,} | {done[what]:,} | {'same' if same else 'DIFFERENT'} |")
    print(f"| erase_guardian_data | {job['erase_guardian_data']:,} | not done | (simplified away) |")
    for table, (left, right) in zip(_STATE_TABLES, zip(*states, strict=True), strict=True):
        differing = sorted(k for k in left.keys() | right.keys() if left.get(k) != right.get(k))
        if differing:
            agree = False
            print(f"end state of {table}: {len(differing):,} rows differ, e.g. {differing[:3]}")
    print(f"\n{'agree' if agree else 'DISAGREE'}: the end states of the job and of the baseline")
    return agree


def _season(installation: Installation, seed: int) -> str:
    """What kodex keeps beside the records, on a few subjects, so that every path of the baseline is compared.

    Through the service functions: legal holds set in kodex (active, expired) on readers and recordings,
    erasure and loan-history erasure requests, exceptions revoked; and readers blocked by an earlier run.
    """
    rng = random.Random(f"{seed}/season")
    settings = load_settings(installation.env())
    ruleset = load_ruleset(settings.policy)
    work = open_workspace(settings)
    engine, master = work.engine, work.master
    try:
        with engine.connect() as connection:
            people = connection.execute(select(readers.c.library, readers.c.id).order_by(readers.c.rid)).all()
            recordings = connection.execute(select(camera_recordings.c.id).order_by(camera_recordings.c.cid)).all()
            granted = connection.execute(select(exceptions.c.library, exceptions.c.id).order_by(exceptions.c.eid)).all()
        picked = rng.sample(people, min(len(people), 80))
        ends = (None, AS_OF + timedelta(days=10), AS_OF - timedelta(days=1))  # the last one is over
        for n, (library, reader) in enumerate(picked[:20]):
            set_hold(engine, master, library, "reader", reader, "asked for by the police", ends[n % 3])
        for n, (recording,) in enumerate(rng.sample(recordings, min(len(recordings), 10))):
            set_hold(engine, master, "svkpk", "camera_recording", recording, "a theft on tape", ends[n % 3])
        for library, reader in picked[20:40]:
            file_request(engine, ruleset, master, library, reader, "erasure", AS_OF - timedelta(days=5))
        histories = [(library, reader) for library, reader in picked[40:] if library == "zdirec"]
        for library, reader in histories:
            file_request(engine, ruleset, master, library, reader, "loan_history_erasure", AS_OF - timedelta(days=3))
        revoked = rng.sample(granted, min(len(granted), 10))
        for library, exception in revoked:
            actor = {"type": "user", "id": "bench", "role": "director"}
            revoke_exception(engine, master, library, exception, AS_OF - timedelta(days=3), actor)
        blocked = [reader for _, reader in picked[60:]]
        with engine.begin() as connection:
            connection.execute(update(readers).where(readers.c.id.in_(blocked)).values(blocked=True))
    finally:
        engine.dispose()
    return (
        f"20 reader and 10 recording holds, 20 erasure and {len(histories)} loan-history requests, "
        f"{len(revoked)} exceptions revoked, {len(blocked)} readers blocked before"
    )


def _job(installation: Installation) -> Counter[str]:
    """The job's full sweep of every library at AS_OF; its applied actions, counted."""
    settings = load_settings(installation.env())
    ruleset = load_ruleset(settings.policy)
    work = open_workspace(settings)
    applied: Counter[str] = Counter()
    try:
        for library in ruleset.libraries:
            result = run_library(
                work.engine, ruleset, work.master, library, AS_OF, full=True,
                recordings_folder=settings.recordings.folder(library),
            )  # fmt: skip
            applied.update({action: n for (action, outcome), n in result.counts.items() if outcome == "applied"})
    finally:
        work.engine.dispose()
    return applied


def _tombstones(engine: Engine) -> Counter[str]:
    """What the job changed beside the subjects it decided: loans and incidents detached, loans erased."""
    with engine.connect() as connection:
        return Counter(
            {
                LOANS_DETACHED: connection.execute(select(func.count()).where(loans.c.reader.is_(None))).scalar_one(),
                INCIDENTS_DETACHED: connection.execute(
                    select(func.count()).where(incidents.c.reader.is_(None))
                ).scalar_one(),
                LOANS_ERASED: connection.execute(select(func.count()).select_from(erased_loans)).scalar_one(),
            }
        )


_STATE_TABLES = (
    "readers",
    "loans",
    "incidents",
    "exceptions",
    "camera_recordings",
    "erased_loans",
    "purged_recordings",
    "legal_holds",
    "subject_requests",
)


def _states(engine: Engine) -> tuple[dict[tuple[str, str], Any], ...]:
    """Each table's rows by (library, id), reduced to what the changes change."""
    r = readers.c
    queries = (
        select(r.library, r.id, r.state, r.blocked, r.wrapped_key.is_(None), r.sealed.is_(None), r.pseudonym.is_(None)),
        select(loans.c.library, loans.c.id, loans.c.reader),
        select(incidents.c.library, incidents.c.id, incidents.c.reader),
        select(exceptions.c.library, exceptions.c.id),
        select(camera_recordings.c.library, camera_recordings.c.id),
        select(erased_loans.c.library, erased_loans.c.id),
        select(purged_recordings.c.library, purged_recordings.c.id),
        select(legal_holds.c.library, legal_holds.c.subject, legal_holds.c.subject_type),
        select(subject_requests.c.library, subject_requests.c.id, subject_requests.c.status, subject_requests.c.reader),
    )
    with engine.connect() as connection:
        return tuple({(row[0], row[1]): tuple(row[2:]) for row in connection.execute(q)} for q in queries)


def _quiet(message: str) -> None:
    pass


if __name__ == "__main__":
    main()
