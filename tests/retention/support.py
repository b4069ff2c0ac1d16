"""Helpers shared by the retention tests: records, imports, runs, table snapshots, the service's test readers.

The store, installations, the kodex command and HTTP clients are in tests/support.py."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, MetaData, select

from kodex.config import Recordings
from kodex.retention.run import LibraryRun, run_library
from kodex.rules.ruleset import Ruleset
from kodex.services.importing import ImportSummary, import_records
from kodex.services.setup import Workspace

AS_OF = date(2026, 11, 22)


# -- records -------------------------------------------------------------------------------------


def reader(library: str, record_id: str, **fields: Any) -> dict[str, Any]:
    return {"type": "reader", "library": library, "id": record_id, "kind": "person", **fields}


def loan(library: str, record_id: str, reader_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "type": "loan",
        "library": library,
        "id": record_id,
        "reader": reader_id,
        "item": f"item-{record_id}",
        "borrowed_at": "2026-01-05",
        **fields,
    }


def incident(library: str, record_id: str, reader_id: str, kind: str, at: str) -> dict[str, Any]:
    return {"type": "incident", "library": library, "id": record_id, "reader": reader_id, "kind": kind, "at": at}


def recording(record_id: str, end: str, location: str | Path, **fields: Any) -> dict[str, Any]:
    """An SVK PK camera recording of the hour that ends at `end` (ISO date-time with offset)."""
    start = end.replace("T11:", "T10:") if "T11:" in end else end
    return {
        "type": "camera_recording",
        "library": "svkpk",
        "id": record_id,
        "camera": "entrance",
        "start": start,
        "end": end,
        "location": str(location),
        **fields,
    }


def clock_at(patch: Any, day: str | date) -> None:
    """Make every library's today `day`, for tests of nights still to come.

    A run that applies decisions decides for no later day than the library's tomorrow (retention.run), so a test
    that runs a night after the real today sets the clock there first (through `patch`, a pytest MonkeyPatch).
    """
    today = day if isinstance(day, date) else date.fromisoformat(day)
    patch.setattr("kodex.retention.run.library_today", lambda ruleset, library: today)


def lines_of(records: Iterable[Mapping[str, Any] | str]) -> list[str]:
    return [(r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in records]


def write_jsonl(path: Path, records: Iterable[Mapping[str, Any] | str]) -> Path:
    path.write_text("".join(lines_of(records)), encoding="utf-8")
    return path


def import_lines(
    work: Workspace,
    ruleset: Ruleset,
    records: Iterable[Mapping[str, Any] | str],
    *,
    as_of: date = AS_OF,
    skip_invalid: bool = False,
) -> ImportSummary:
    lines = lines_of(records)
    return import_records(
        lambda: iter(lines), work.engine, ruleset, work.master, as_of, skip_invalid=skip_invalid,
        recordings=work.settings.recordings,
    )  # fmt: skip


def import_file(
    work: Workspace, ruleset: Ruleset, path: Path, *, as_of: date = AS_OF, skip_invalid: bool = False
) -> ImportSummary:
    def read() -> Iterator[str]:
        with path.open(encoding="utf-8") as handle:
            yield from handle

    return import_records(
        read, work.engine, ruleset, work.master, as_of, skip_invalid=skip_invalid, recordings=work.settings.recordings
    )


def with_recordings(work: Workspace, root: Path) -> Workspace:
    """The workspace with its libraries' recordings folders under `root` (root/<library>), created; the
    default folder, /var/cctv/<library> (the samples'), is not for tests to write in."""
    settings = work.settings.model_copy(update={"recordings": Recordings(root=root)})
    for library in ("svkpk", "kntb", "zdirec"):
        settings.recordings.folder(library).mkdir(parents=True, exist_ok=True)
    return Workspace(work.engine, work.master, settings)


# -- running -------------------------------------------------------------------------------------

# PostgreSQL's run lock is an advisory lock per database, not per schema: a test's store shares it with every
# other store on the server, so a run waits for another test session's run instead of failing.
WAIT = 60.0


def run(work: Workspace, ruleset: Ruleset, library: str, as_of: date | datetime = AS_OF, **options: Any) -> LibraryRun:
    folder = work.settings.recordings.folder(library)
    return run_library(
        work.engine, ruleset, work.master, library, as_of, wait=WAIT, recordings_folder=folder, **options
    )


def run_all(work: Workspace, ruleset: Ruleset, as_of: date = AS_OF, **options: Any) -> list[LibraryRun]:
    return [run(work, ruleset, library, as_of, **options) for library in ruleset.libraries]


# -- looking at the store ------------------------------------------------------------------------


def plain(value: Any) -> Any:
    """A column value in a form that compares and hashes the same on SQLite and PostgreSQL."""
    if isinstance(value, memoryview):
        return bytes(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    return value


def reflected(engine: Engine) -> MetaData:
    """Every table the database really holds (not only the ones the schema module names)."""
    meta = MetaData()
    meta.reflect(bind=engine)
    return meta


def snapshot(engine: Engine, *, exclude: Iterable[str] = ()) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table (sorted), for comparing the whole store before and after."""
    left_out = set(exclude)
    tables = {}
    with engine.connect() as connection:
        for table in reflected(engine).sorted_tables:
            if table.name in left_out:
                continue
            rows = [tuple(plain(v) for v in row) for row in connection.execute(select(table))]
            tables[table.name] = sorted(rows, key=repr)
    return tables


def all_values(engine: Engine) -> Iterator[tuple[str, str, Any]]:
    """(table, column, value) for every value of every column of every table, JSON as text."""
    with engine.connect() as connection:
        for table in reflected(engine).sorted_tables:
            for row in connection.execute(select(table)):
                for column, value in row._mapping.items():
                    yield table.name, str(column), plain(value)


def sqlite_files(url: str) -> list[Path]:
    """The SQLite database file and its -wal and -shm companions that exist."""
    base = Path(url.removeprefix("sqlite:///"))
    return [p for p in (base, base.with_name(base.name + "-wal"), base.with_name(base.name + "-shm")) if p.exists()]


# -- the service's test readers (tests/api/test_http_flows.py, test_cli_service.py, tests/retention/test_service_cases.py)

PERSONAL = {"first_name": "Jana", "last_name": "Malá", "address": "Plzeň", "id_document": "OP 1"}


def person(library: str, record_id: str, **fields: Any) -> dict[str, Any]:
    """A complete natural person of `library` (so no inventory finding gets in the way)."""
    base: dict[str, Any] = {"birth_date": "1980-05-02", "personal": dict(PERSONAL)}
    return reader(library, record_id, **{**base, **fields})


# svkpk: LAPSED's card ended 31 Dec 2023; 24 months after it end on 31 Dec 2025, so 2026-11-22 anonymises it
LAPSED = person("svkpk", "SV-LAPSED", renewed_at="2023-01-01", debt=0, active_loans=0)
CURRENT = person("svkpk", "SV-CURRENT", renewed_at="2026-01-10", debt=0, active_loans=0)
OWING = person("svkpk", "SV-OWING", renewed_at="2026-01-10", debt=120, active_loans=0)
# expelled from the premises twice within a year (SV-EX1, SV-EX2): proposed for exclusion; SV-ONCE only once
EXPELLED = [
    person("svkpk", "SV-EX1", renewed_at="2026-01-10"),
    incident("svkpk", "I-1", "SV-EX1", "expelled_from_premises", "2026-01-15"),
    incident("svkpk", "I-2", "SV-EX1", "expelled_from_premises", "2026-10-02"),
    person("svkpk", "SV-EX2", renewed_at="2026-01-10"),
    incident("svkpk", "I-3", "SV-EX2", "expelled_from_premises", "2026-02-15"),
    incident("svkpk", "I-4", "SV-EX2", "expelled_from_premises", "2026-09-02"),
    person("svkpk", "SV-ONCE", renewed_at="2026-01-10"),
    incident("svkpk", "I-5", "SV-ONCE", "expelled_from_premises", "2026-09-02"),
]
