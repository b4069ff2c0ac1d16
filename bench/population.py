"""A realistic population written straight into a kodex store, fast (prints progress; not a test).

    python -m bench.population --readers 1000000 [--seed 7] [--home DIR] [--database-url URL] [--cameras 4]
    python -m bench.population --check [--readers 2000] [--database-url URL]

Builds an installation as an operator would (`kodex init`, i.e.
services.setup.initialise, in --home DIR: its master key and config; every
library of the policy onboarded with a data-processing agreement), then
writes N readers into its store without going through `kodex import`, in
chunks of 10,000 readers (never the whole population in memory): SQLite in
one transaction per chunk (executemany), PostgreSQL by COPY (psycopg). The
store is the SQLite file DIR/kodex.sqlite3 unless --database-url names
another (PostgreSQL: the database as given; the tables are analysed at the
end, as autovacuum would have done on a real server).

The records are those of bench/synthetic.py for the same seed (readers
spread over the three libraries, ages with minors, categories, eight years of
registrations, debts, loans out and reminded, erasure requests, legal holds,
a director's exception for one reader in fifty, incidents for one in twenty),
plus what it lacks, each from a stream of its own: about 10 loans per reader
(the reader's `active_loans` still out, the rest returned over the years
before their last activity; 2 % interlibrary) and, at every library whose
policy purges recordings (SVK PK), four cameras recording one file an hour
over the 30 days before as_of (1 % under a legal hold). Recording files are
named under /nonexistent/kodex-bench/cctv: none exists, so a purge's file
deletion finds nothing to delete. Records are deterministic for a seed; keys,
nonces and pseudonyms are random, as an import makes them.

The rows are those `kodex import` (services.importing.import_records) writes
for the same records: every column, the record digest, the sealed personal
data, pseudonyms, and a decision-log entry per exception granted, with a
signed checkpoint at the end. --check proves it: it writes --readers readers
(default 2,000) both ways into two SQLite stores under one master key and
compares them table by table (pseudonyms, keys and nonces aside; sealed
data compared unsealed); with --database-url, in two scratch databases
kodex_bench_<random> of that PostgreSQL server instead (dropped afterwards).
Exit status 1 when they differ.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from pydantic import BaseModel
from sqlalchemy import JSON, Connection, Engine, Table, Text, cast, create_engine, select, text
from sqlalchemy.engine import make_url

from bench.synthetic import population as synthetic_population
from kodex.audit.entries import exception_entry, now
from kodex.audit.log import append, checkpoint
from kodex.config import load_settings
from kodex.rules.records import CameraRecording, ExceptionGrant, Incident, Loan, Reader
from kodex.rules.ruleset import Ruleset
from kodex.services.importing import import_records
from kodex.services.policy_source import load_ruleset
from kodex.services.setup import initialise, open_workspace
from kodex.services.tenants import Agreement, onboard
from kodex.store.codec import (
    canonical,
    exception_aad,
    hold_reason,
    new_pseudonym,
    reader_record,
    seal_hold_reason,
    split_reader,
)
from kodex.store.crypto import MasterKey
from kodex.store.schema import (
    camera_recordings,
    decision_log,
    erased_loans,
    exceptions,
    findings,
    incidents,
    legal_holds,
    libraries,
    loans,
    log_checkpoints,
    log_heads,
    metadata,
    plan_items,
    purged_recordings,
    readers,
    runs,
    subject_requests,
)

__all__ = [
    "AS_OF",
    "Installation",
    "build",
    "clone",
    "create_database",
    "database_url",
    "discard",
    "drop_database",
    "records",
    "scratch_database",
    "write_population",
]

AS_OF = date(2026, 11, 22)
CHUNK = 10_000  # readers generated and written at a time
CAMERAS = ("entrance", "reading-room", "study-room", "children")
CAMERA_DAYS = 30
CCTV = "/nonexistent/kodex-bench/cctv"  # no recording file exists: a purge deletes nothing on disk
AGREEMENT = Agreement(date(2026, 1, 5), "DPA-BENCH-1")
IMPORT_ACTOR = {"type": "import", "id": None, "role": None}  # whom the log names as granting imported exceptions


@dataclass(frozen=True)
class Installation:
    """A kodex installation: its store, its master key file, its home (config).

    `server_url`: on PostgreSQL, the URL of a database of the same server to create and drop databases from.
    """

    home: Path
    database_url: str
    key_file: Path
    server_url: str | None = None

    def env(self) -> dict[str, str]:
        env = {name: value for name, value in os.environ.items() if not name.startswith("KODEX_")}
        env.update(
            KODEX_HOME=str(self.home), KODEX_DATABASE_URL=self.database_url, KODEX_MASTER_KEY_FILE=str(self.key_file),
            KODEX_RECORDINGS_ROOT=CCTV,  # the recordings lie in CCTV/<library>/…: purges are purges, not refusals
        )  # fmt: skip
        return env


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.population", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--readers", type=int, help="readers to write (default 100,000; with --check 2,000)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the records (default 7)")
    parser.add_argument("--home", type=Path, help="the installation's directory (default: a new temporary one)")
    parser.add_argument("--database-url", help="the store (PostgreSQL); default: DIR/kodex.sqlite3 in --home")
    parser.add_argument(
        "--cameras",
        type=int,
        default=len(CAMERAS),
        help=f"cameras at SVK PK, the library whose policy purges recordings (default and most {len(CAMERAS)})",
    )
    parser.add_argument("--check", action="store_true", help="compare with `kodex import` of the same records")
    args = parser.parse_args()
    count = args.readers if args.readers is not None else (2_000 if args.check else 100_000)
    if count < 1 or not 0 <= args.cameras <= len(CAMERAS):
        parser.error(f"--readers must be at least 1, --cameras between 0 and {len(CAMERAS)}")
    cameras = CAMERAS[: args.cameras]
    if args.check:
        sys.exit(0 if check(count, args.seed, cameras, args.database_url) else 1)
    home = args.home.expanduser().resolve() if args.home else Path(tempfile.mkdtemp(prefix="kodex-population-"))
    installation = build(home, args.database_url, count, args.seed, cameras)
    print(f"store        {_hidden(installation.database_url)}")
    print(f"master key   {installation.key_file}")
    print(f"environment  KODEX_HOME={home} KODEX_DATABASE_URL=… KODEX_MASTER_KEY_FILE={installation.key_file}")


# -- the records ---------------------------------------------------------------------------------------


def records(
    count: int, seed: int, as_of: date = AS_OF, cameras: Sequence[str] = CAMERAS
) -> Iterator[list[dict[str, Any]]]:
    """The population (record contract), a chunk of CHUNK readers at a time, then the camera recordings.

    A reader is followed by its loans, then bench/synthetic.py's exception and incidents of that reader.
    """
    loan_rng = random.Random(f"{seed}/loans")  # streams of their own: the synthetic records of a seed do not change
    chunk: list[dict[str, Any]] = []
    in_chunk = 0
    for record in synthetic_population(count, seed, as_of):
        if record["type"] == "reader":
            if in_chunk == CHUNK:
                yield chunk
                chunk, in_chunk = [], 0
            in_chunk += 1
            chunk.append(record)
            chunk.extend(_loans(loan_rng, record, as_of))
        else:
            chunk.append(record)
    if chunk:
        yield chunk
    recordings = list(_recordings(random.Random(f"{seed}/cameras"), as_of, cameras))
    for first in range(0, len(recordings), CHUNK):
        yield recordings[first : first + CHUNK]


def _loans(rng: random.Random, reader: dict[str, Any], as_of: date) -> list[dict[str, Any]]:
    """About 10 loans: those still out (`active_loans`, reminded and interlibrary as the reader says), the rest returned."""
    birth = date.fromisoformat(reader["birth_date"])
    renewed = date.fromisoformat(reader["renewed_at"])
    last = date.fromisoformat(reader["last_activity_at"])
    first = max(renewed - timedelta(days=rng.randint(0, 3 * 365)), birth + timedelta(days=6 * 365))
    first = min(first, last)
    span = (last - first).days
    made: list[tuple[date, date | None, bool]] = []
    for _ in range(rng.randint(0, 18)):
        borrowed = first + timedelta(days=rng.randint(0, span))
        made.append((borrowed, min(borrowed + timedelta(days=rng.randint(1, 45)), as_of), rng.random() < 0.02))
    for n in range(reader["active_loans"]):
        borrowed = max(first, last - timedelta(days=rng.randint(0, 60)))
        made.append((borrowed, None, n < reader["reminded_ill_loans"]))
    made.sort(key=lambda loan: loan[0])
    return [
        {
            "type": "loan",
            "library": reader["library"],
            "id": f"L-{reader['id']}-{n:02d}",
            "reader": reader["id"],
            "item": f"2590{rng.randint(0, 999_999):06d}",
            "borrowed_at": borrowed.isoformat(),
            "due_at": (borrowed + timedelta(days=30)).isoformat(),
            "returned_at": None if returned is None else returned.isoformat(),
            "ill": ill,
        }
        for n, (borrowed, returned, ill) in enumerate(made, start=1)
    ]


def _recordings(rng: random.Random, as_of: date, cameras: Sequence[str]) -> Iterator[dict[str, Any]]:
    """One recording an hour per camera over the CAMERA_DAYS days before as_of, in local time (DST included)."""
    zone = ZoneInfo("Europe/Prague")
    start = datetime.combine(as_of - timedelta(days=CAMERA_DAYS), datetime.min.time(), zone).astimezone(UTC)
    end = datetime.combine(as_of, datetime.min.time(), zone).astimezone(UTC)
    hours = int((end - start).total_seconds() // 3600)
    for hour in range(hours):
        begin = start + timedelta(hours=hour)
        for camera in cameras:
            stamp = f"{begin:%Y%m%dT%HZ}"
            yield {
                "type": "camera_recording",
                "library": "svkpk",
                "id": f"{camera}-{stamp}",
                "camera": camera,
                "start": begin.astimezone(zone).isoformat(),
                "end": (begin + timedelta(hours=1)).astimezone(zone).isoformat(),
                "location": f"{CCTV}/svkpk/{camera}/{stamp}.mp4",
                "legal_hold": {"reason": "handed to the police", "until": None} if rng.random() < 0.01 else None,
            }


# -- the installation ----------------------------------------------------------------------------------


def build(
    home: Path,
    store_url: str | None,
    count: int,
    seed: int,
    cameras: Sequence[str] = CAMERAS,
    as_of: date = AS_OF,
    progress: Callable[[str], None] | None = None,
    server_url: str | None = None,
) -> Installation:
    """`kodex init` in `home`, every library onboarded with its agreement, and the population written.

    The store is `store_url`, by default an SQLite file in `home`.
    """
    say = progress or _progress
    installation = initialised(home, store_url, say, server_url)
    settings = load_settings(installation.env())
    ruleset = load_ruleset(settings.policy)
    work = open_workspace(settings)
    try:
        write_population(work.engine, ruleset, work.master, count, seed, as_of, cameras, say)
    finally:
        work.engine.dispose()
    return installation


def initialised(
    home: Path, store_url: str | None, say: Callable[[str], None], server_url: str | None = None
) -> Installation:
    """An installation in `home` set up by `kodex init`, each library onboarded with a data-processing agreement."""
    home.mkdir(parents=True, exist_ok=True)
    url = store_url or f"sqlite:///{home / 'kodex.sqlite3'}"
    installation = Installation(home, url, home / "master.key", server_url)
    settings = load_settings(installation.env())
    ruleset = load_ruleset(settings.policy)
    for line in initialise(settings, ruleset):
        say(f"init: {line}")
    work = open_workspace(settings)
    try:
        for library in ruleset.libraries:
            onboard(work.engine, ruleset, library, AGREEMENT)
    finally:
        work.engine.dispose()
    return installation


@contextmanager
def scratch_database(server_url: str | None) -> Iterator[str | None]:
    """A new PostgreSQL database kodex_bench_<random> on the server of `server_url`, dropped afterwards.

    None (SQLite: the installation's file) when `server_url` is None.
    """
    if server_url is None:
        yield None
        return
    name = f"kodex_bench_{uuid.uuid4().hex[:12]}"
    create_database(server_url, name)
    try:
        yield database_url(server_url, name)
    finally:
        drop_database(server_url, name)


def database_url(server_url: str, name: str) -> str:
    """`server_url` naming the database `name` instead."""
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def create_database(server_url: str, name: str, template: str | None = None) -> None:
    """CREATE DATABASE `name` (a file copy of `template`, when given) on the server of `server_url`."""
    if make_url(server_url).get_backend_name() != "postgresql":
        raise SystemExit("--database-url names a PostgreSQL database (the default store is an SQLite file)")
    copy = f' TEMPLATE "{template}" STRATEGY FILE_COPY' if template else ""
    _autocommit(server_url, f'CREATE DATABASE "{name}"{copy}')


def drop_database(server_url: str, name: str) -> None:
    _autocommit(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def clone(installation: Installation, directory: Path) -> Installation:
    """A copy of the installation's store under the same master key and home.

    SQLite: a copy of its file in `directory`. PostgreSQL: CREATE DATABASE kodex_bench_<random> TEMPLATE it (a file
    copy as well; nobody may be connected to it meanwhile), from the installation's server_url.
    """
    url = make_url(installation.database_url)
    if url.get_backend_name() == "sqlite":
        assert url.database is not None
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / "kodex.sqlite3"
        shutil.copyfile(url.database, target)  # the job and the writer leave the write-ahead log empty
        return Installation(installation.home, f"sqlite:///{target}", installation.key_file)
    assert installation.server_url is not None and url.database is not None
    name = f"kodex_bench_{uuid.uuid4().hex[:12]}"
    create_database(installation.server_url, name, template=url.database)
    copy = database_url(installation.database_url, name)
    return Installation(installation.home, copy, installation.key_file, installation.server_url)


def discard(installation: Installation) -> None:
    """Remove a clone's store: its SQLite file, or its PostgreSQL database."""
    url = make_url(installation.database_url)
    if url.get_backend_name() == "sqlite":
        assert url.database is not None
        for suffix in ("", "-wal", "-shm"):
            Path(url.database + suffix).unlink(missing_ok=True)
        return
    assert installation.server_url is not None and url.database is not None
    drop_database(installation.server_url, url.database)


def _autocommit(server_url: str, statement: str) -> None:
    engine = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text(statement))
    finally:
        engine.dispose()


# -- writing ---------------------------------------------------------------------------------------------


def write_population(
    engine: Engine,
    ruleset: Ruleset,
    master: MasterKey,
    count: int,
    seed: int,
    as_of: date = AS_OF,
    cameras: Sequence[str] = CAMERAS,
    progress: Callable[[str], None] | None = None,
) -> Counter[str]:
    """Write the population into an initialised store whose libraries are onboarded; rows written, by table."""
    say = progress or _progress
    known = set(ruleset.libraries)
    written: Counter[str] = Counter()
    logged: set[str] = set()
    started = time.perf_counter()
    for chunk in records(count, seed, as_of, cameras):
        rows = _rows(chunk, master, known, as_of)
        with engine.begin() as connection:
            sink = _Copy(connection) if connection.dialect.name == "postgresql" else _Insert(connection)
            for name, table_rows in rows.tables.items():
                sink.write(name, table_rows)
                written[name] += len(table_rows)
            for library, entries in sorted(rows.grants.items()):  # as an import logs the exceptions it grants
                append(connection, library, as_of, entries)
                written[decision_log.name] += len(entries)
                logged.add(library)
        seconds = time.perf_counter() - started
        total = sum(written.values())
        say(
            f"written {written['readers']:,} of {count:,} readers, {written['camera_recordings']:,} recordings; "
            f"{total:,} rows in {seconds:,.1f} s ({total / seconds:,.0f} rows/s)"
        )
    with engine.begin() as connection:
        for library in sorted(logged):
            checkpoint(connection, library, master, now())
        if connection.dialect.name == "postgresql":  # the statistics autovacuum would have gathered by now
            for name in metadata.tables:
                connection.execute(text(f'ANALYZE "{name}"'))
    if engine.dialect.name == "sqlite":
        with engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    return written


COLUMNS = {  # what services.importing writes for each record, in the order the sinks below take them
    "readers": ("library", "id", "pseudonym", "state", "blocked", "facts", "wrapped_key", "sealed", "digest", "next_review"),
    "loans": ("library", "id", "reader", "item", "borrowed_at", "due_at", "returned_at", "ill", "digest"),
    "incidents": ("library", "id", "reader", "kind", "at", "pseudonym", "digest"),
    "exceptions": ("library", "id", "pseudonym", "subject", "rule", "role", "granted_by", "reason", "from", "until",
                   "digest", "revoked_as_of"),
    "camera_recordings": ("library", "id", "camera", "start", "end", "location", "legal_hold", "legal_hold_reason",
                          "pseudonym", "digest", "next_review", "purge_failures"),
}  # fmt: skip
Row = tuple[Any, ...]  # JSON columns as JSON text, dates as ISO text: as SQLAlchemy binds them


@dataclass
class _Rows:
    tables: dict[str, list[Row]]
    grants: dict[str, list[dict[str, Any]]]  # library -> decision-log entries of the exceptions granted


def _rows(chunk: list[dict[str, Any]], master: MasterKey, known: set[str], as_of: date) -> _Rows:
    """The rows `kodex import` would write for the chunk's records (services.importing)."""
    tables: dict[str, list[Row]] = {name: [] for name in COLUMNS}
    grants: dict[str, list[dict[str, Any]]] = {}
    pseudonyms: dict[tuple[str, str], str] = {}
    digest = master.digest
    for record in chunk:
        library, kind = record["library"], record["type"]
        if library not in known:
            raise ValueError(f"the policy has no library {library!r}")
        if kind == "loan":  # ten of these a reader: the hot path
            c = _contract(Loan, record)
            tables["loans"].append(
                (library, c["id"], c["reader"], c["item"], c["borrowed_at"], c["due_at"], c["returned_at"], c["ill"],
                 digest(canonical(c)))
            )  # fmt: skip
        elif kind == "reader":
            c = _contract(Reader, record)
            facts, sealed = split_reader(c, master)
            pseudonym = new_pseudonym()
            pseudonyms[(library, c["id"])] = pseudonym
            tables["readers"].append(
                (library, c["id"], pseudonym, "active", False, json.dumps(facts), sealed.wrapped_key, sealed.blob,
                 digest(canonical(c)), None)
            )  # fmt: skip
        elif kind == "incident":
            c = _contract(Incident, record)
            tables["incidents"].append(
                (library, c["id"], c["reader"], c["kind"], c["at"], new_pseudonym(), digest(canonical(c)))
            )
        elif kind == "exception":
            c = _contract(ExceptionGrant, record)
            exception = new_pseudonym()
            tables["exceptions"].append(
                (library, c["id"], exception, c["subject"], c["rule"], c["role"], _wrapped(master, c, "granted_by"),
                 _wrapped(master, c, "reason"), c["from"], c["until"], digest(canonical(c)), None)
            )  # fmt: skip
            subject = pseudonyms.get((library, c["subject"]))
            grants.setdefault(library, []).append(
                exception_entry(
                    str(uuid.uuid4()), library, granted=True, exception=exception,
                    subject_type="reader" if subject else None, subject=subject, rule=c["rule"], role=c["role"],
                    from_=c["from"], until=c["until"], as_of=as_of.isoformat(), actor=IMPORT_ACTOR, time=now(),
                )
            )  # fmt: skip
        elif kind == "camera_recording":
            c = _contract(CameraRecording, record)
            tables["camera_recordings"].append(
                (library, c["id"], c["camera"], c["start"], c["end"], c["location"], *_recording_hold(master, c),
                 new_pseudonym(), digest(canonical(c)), None, 0)
            )  # fmt: skip
        else:
            raise ValueError(f"records of type {kind!r} are not written by this benchmark")
    return _Rows(tables, grants)


def _contract(model: type[BaseModel], record: Mapping[str, Any]) -> dict[str, Any]:
    """The record as store.codec.contract_json gives it after validation: every field of the model, in its order.

    The generator writes values already in their JSON form (ISO dates, whole amounts), so no value changes.
    """
    return {key: record[key] if required else record.get(key, default) for key, required, default in _fields(model)}


@cache
def _fields(model: type[BaseModel]) -> tuple[tuple[str, bool, Any], ...]:
    return tuple((f.alias or name, f.is_required(), f.default) for name, f in model.model_fields.items())


def _recording_hold(master: MasterKey, contract: Mapping[str, Any]) -> tuple[str, bytes | None]:
    """A recording's own hold as services.importing stores it: the day in clear (JSON text), the reason wrapped."""
    hold = contract["legal_hold"]
    if hold is None:
        return json.dumps(None), None
    reason = seal_hold_reason(master, contract["library"], contract["id"], hold["reason"])
    return json.dumps({"until": hold["until"]}), reason


def _wrapped(master: MasterKey, contract: Mapping[str, Any], field: str) -> bytes:
    """An exception's grantor or reason, wrapped as services.importing wraps it."""
    return master.wrap(contract[field].encode(), exception_aad(contract["library"], contract["id"], field))


class _Insert:
    """SQLite: executemany inside the chunk's transaction."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def write(self, table: str, rows: list[Row]) -> None:
        if rows:
            columns = COLUMNS[table]
            names, marks = ", ".join(f'"{c}"' for c in columns), ", ".join("?" for _ in columns)
            self.connection.exec_driver_sql(f'INSERT INTO "{table}" ({names}) VALUES ({marks})', rows)


class _Copy:
    """PostgreSQL: COPY … FROM STDIN through psycopg, inside the chunk's transaction."""

    def __init__(self, connection: Connection) -> None:
        driver = connection.connection.driver_connection
        assert isinstance(driver, psycopg.Connection)
        self.driver: psycopg.Connection[Any] = driver

    def write(self, table: str, rows: list[Row]) -> None:
        if rows:
            names = ", ".join(f'"{c}"' for c in COLUMNS[table])
            with self.driver.cursor() as cursor, cursor.copy(f'COPY "{table}" ({names}) FROM STDIN') as copy:
                for row in rows:
                    copy.write_row(row)


# -- the check against `kodex import` -----------------------------------------------------------------------


def check(count: int, seed: int, cameras: Sequence[str] = CAMERAS, server_url: str | None = None) -> bool:
    """Write `count` readers directly and through import_records; True when the stores hold the same rows.

    On SQLite files, or with `server_url` in two scratch PostgreSQL databases of that server.
    """
    with (
        tempfile.TemporaryDirectory(prefix="kodex-population-check-") as tmp,
        scratch_database(server_url) as written_url,
        scratch_database(server_url) as imported_url,
    ):
        key = MasterKey.generate()
        homes = (Path(tmp) / "written", Path(tmp) / "imported")
        for home in homes:  # one master key for both: digests and wrapped values then compare
            home.mkdir()
            descriptor = os.open(home / "master.key", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(key)
        written = build(homes[0], written_url, count, seed, cameras, progress=_quiet, server_url=server_url)
        imported = initialised(homes[1], imported_url, _quiet, server_url)
        settings = load_settings(imported.env())
        ruleset = load_ruleset(settings.policy)
        work = open_workspace(settings)
        lines = [json.dumps(r, ensure_ascii=False) for chunk in records(count, seed, AS_OF, cameras) for r in chunk]
        started = time.perf_counter()
        import_records(lambda: iter(lines), work.engine, ruleset, work.master, AS_OF, recordings=settings.recordings)
        print(f"imported {len(lines):,} records through import_records in {time.perf_counter() - started:.1f} s")
        other = open_workspace(load_settings(written.env()))
        try:
            problems = compare(other.engine, work.engine, work.master)
        finally:
            work.engine.dispose()
            other.engine.dispose()
    for problem in problems[:20]:
        print(f"DIFFERENT  {problem}")
    print(f"{'different' if problems else 'the same'}: {count:,} readers written directly and imported"
          f"{f' ({len(problems)} differences)' if problems else ''}")  # fmt: skip
    return not problems


_IGNORED = {  # random per write (keys, nonces, pseudonyms) or surrogate keys: compared otherwise, or only in order
    readers: ("rid", {"rid", "pseudonym", "wrapped_key", "sealed"}),
    loans: ("lid", {"lid"}),
    incidents: ("iid", {"iid", "pseudonym"}),
    camera_recordings: ("cid", {"cid", "pseudonym", "legal_hold_reason"}),
    exceptions: ("eid", {"eid", "pseudonym", "granted_by", "reason"}),
}
_EMPTY = (erased_loans, purged_recordings, findings, plan_items, runs, legal_holds, subject_requests)


def compare(written: Engine, imported: Engine, master: MasterKey) -> list[str]:
    """What differs between two stores holding the same records (both under `master`)."""
    problems: list[str] = []
    with written.connect() as a, imported.connect() as b:
        problems += _same(a, b, libraries, {"onboarded_at"})
        for table, (surrogate, ignored) in _IGNORED.items():
            problems += _same(a, b, table, ignored)
            order = select(table.c.library, table.c.id).order_by(table.c[surrogate])
            if a.execute(order).all() != b.execute(order).all():
                problems.append(f"{table.name}: rows in another order")
        problems += _sealed(a, b, master)
        for table in _EMPTY:
            for side, connection in (("written", a), ("imported", b)):
                if connection.execute(select(table)).first() is not None:
                    problems.append(f"{table.name}: not empty in the {side} store")
        problems += _logs(a, b)
    return problems


def _same(a: Connection, b: Connection, table: Table, ignored: set[str]) -> list[str]:
    """Rows matched by (library, id), or by id: every column not ignored is equal."""
    columns: list[Any] = [c for c in table.c if c.name not in ignored]
    columns += [cast(c, Text).label(f"{c.name} as text") for c in table.c if isinstance(c.type, JSON)]
    by = [table.c[k] for k in ("library", "id") if k in table.c]

    def rows(connection: Connection) -> dict[tuple[Any, ...], dict[str, Any]]:
        found = {}
        for row in connection.execute(select(*columns)):
            mapping = dict(row._mapping)
            found[tuple(mapping[c.name] for c in by)] = mapping
        return found

    left, right = rows(a), rows(b)
    problems = [f"{table.name}: {len(left)} rows written, {len(right)} imported"] if len(left) != len(right) else []
    for ident, row in left.items():
        other = right.get(ident)
        if other is None:
            problems.append(f"{table.name} {ident}: only in the written store")
            continue
        for name, value in row.items():
            if other[name] != value:
                problems.append(f"{table.name} {ident}: {name} differs")
    return problems


def _sealed(a: Connection, b: Connection, master: MasterKey) -> list[str]:
    """Sealed personal data and wrapped exception texts, compared unsealed; pseudonyms present and unique."""
    problems = []

    def personal(connection: Connection) -> dict[tuple[str, str], Any]:
        query = select(readers.c.facts, readers.c.wrapped_key, readers.c.sealed, readers.c.pseudonym)
        return {
            (r.facts["library"], r.facts["id"]): (reader_record(r.facts, r.wrapped_key, r.sealed, master), r.pseudonym)
            for r in connection.execute(query)
        }

    left, right = personal(a), personal(b)
    for ident, (record, pseudonym) in left.items():
        if right.get(ident, (None,))[0] != record:
            problems.append(f"readers {ident}: sealed personal data differ")
        if not pseudonym or len(pseudonym) != 32:
            problems.append(f"readers {ident}: no pseudonym")

    def texts(connection: Connection) -> dict[tuple[str, str], tuple[str, str]]:
        found = {}
        for row in connection.execute(select(exceptions)):
            aad = (row.library, row.id)
            grantor, reason = (
                master.unwrap(row._mapping[f], exception_aad(*aad, f)).decode() for f in ("granted_by", "reason")
            )
            found[aad] = (grantor, reason)
        return found

    if texts(a) != texts(b):
        problems.append("exceptions: wrapped grantor or reason differ")

    def holds(connection: Connection) -> dict[tuple[str, str], str]:
        query = select(camera_recordings).where(camera_recordings.c.legal_hold_reason.is_not(None))
        return {(row.library, row.id): hold_reason(master, row) for row in connection.execute(query)}

    if holds(a) != holds(b):
        problems.append("camera_recordings: wrapped legal-hold reasons differ")
    return problems


def _logs(a: Connection, b: Connection) -> list[str]:
    """The decision logs: the same entries in the same order per library (ids, times and pseudonyms aside)."""
    columns = [decision_log.c[n] for n in ("library", "idx", "kind", "as_of", "day", "subject_type", "rule", "outcome")]

    def log(connection: Connection) -> list[tuple[Any, ...]]:
        query = select(*columns, decision_log.c.entry).order_by(decision_log.c.library, decision_log.c.idx)
        found = []
        for row in connection.execute(query):
            entry = json.loads(row.entry)
            for name in ("id", "time", "subject", "exception"):
                entry.pop(name, None)
            found.append((*row[:-1], json.dumps(entry, sort_keys=True)))
        return found

    problems = [] if log(a) == log(b) else ["decision_log: entries differ"]
    for table, key in ((log_heads, log_heads.c.size), (log_checkpoints, log_checkpoints.c.size)):
        query = select(table.c.library, key).order_by(table.c.library, key)
        if a.execute(query).all() != b.execute(query).all():
            problems.append(f"{table.name}: sizes differ")
    return problems


# -- printing ----------------------------------------------------------------------------------------------


def _hidden(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def _quiet(message: str) -> None:
    pass


def _progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
