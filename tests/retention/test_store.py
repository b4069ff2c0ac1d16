"""The store: import and export, idempotent imports, invalid input, encryption at rest, master-key checks.

Issue 4: "import and export round trip; a known name, address and card number searched for in the raw
database after import are not found in clear; after anonymise, the reader's personal data cannot be
decrypted by any means kodex has; a missing or wrong master key stops the run before it touches anything,
with a message that says what to set."
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.dialects import postgresql

import kodex.store.database as store_database
from kodex.config import load_settings
from kodex.errors import InvalidRecords, MasterKeyError, StoreNotReady
from kodex.rules.ruleset import Ruleset
from kodex.services.access_copy import access_copy
from kodex.services.setup import Workspace, open_workspace
from kodex.store.codec import canonical, reader_aad, reader_record
from kodex.store.crypto import MasterKey
from kodex.store.database import connect
from kodex.store.repositories.batches import _FINDINGS, _GRANTS, _HOLDS, _INCIDENTS, _RETURNED
from kodex.store.schema import incidents, loans, metadata, readers
from tests import support
from tests.retention.support import (
    all_values,
    import_file,
    import_lines,
    incident,
    loan,
    reader,
    recording,
    run,
    run_all,
    snapshot,
    sqlite_files,
    write_jsonl,
)
from tests.support import child_env, kodex_process, on_postgresql, start_kodex

# -- a small hand-written population --------------------------------------------------------------

PERSONAL = {
    "first_name": "Květoslava",
    "last_name": "Šťastná-Zelenková",
    "address": "Náměstí Republiky 1234/17, Plzeň",
    "email": "kveta.stastna@example.org",
    "phone": "+420 777 123 456",
    "id_document": "OP 918273645",
}
GUARDIAN = {
    "first_name": "Bohuslav",
    "last_name": "Hrubý-Lhotecký",
    "address": "Zahradní 77/3, Dobřany",
    "id_document": "OP 564738291",
}
HOLD_REASON = "předáno Policii ČR, č.j. KRPP-4471-19/TČ-2026"
ADULT = reader(
    "svkpk", "SV-4411", category="adult", birth_date="1984-04-03", renewed_at="2026-03-01",
    last_activity_at="2026-10-30", debt=0, active_loans=1, reminded_loans=0, reminded_ill_loans=0,
    personal=PERSONAL,
)  # fmt: skip
CHILD = reader(
    "svkpk", "SV-4412", category="child", birth_date="2013-05-06", renewed_at="2026-02-01", debt=0, active_loans=0,
    guardian=GUARDIAN,
    personal={"first_name": "Matýsek", "last_name": "Hrubý-Lhotecký", "address": "Zahradní 77/3, Dobřany"},
)  # fmt: skip
HELD = reader(
    "zdirec", "ZD-5501", category="senior", birth_date="1950-12-24", renewed_at="2026-01-10", debt=0,
    active_loans=0, legal_hold={"reason": HOLD_REASON, "until": None},
    personal={"first_name": "Radomír", "last_name": "Vondráček", "address": "Brodská 8, Ždírec nad Doubravou"},
)  # fmt: skip
LOANS = [
    loan("svkpk", "L-9001", "SV-4411", borrowed_at="2026-01-05", due_at="2026-02-05", returned_at="2026-02-01"),
    loan("svkpk", "L-9002", "SV-4411", borrowed_at="2026-10-20", due_at="2026-11-20", ill=True),
]
INCIDENTS = [incident("svkpk", "I-301", "SV-4411", "expelled_from_premises", "2026-01-15")]
EXCEPTION = {
    "type": "exception", "library": "svkpk", "id": "E-77", "subject": "SV-4411",
    "rule": "svkpk.retention.after_settlement", "role": "director", "granted_by": "Mgr. Ludmila Ředitelová",
    "reason": "pending dispute", "from": "2026-11-01", "until": "2027-01-31",
}  # fmt: skip
CAMERA = recording("cam-20261110T10", "2026-11-10T11:00:00+01:00", "/var/cctv/svkpk/entrance/20261110T10.mp4")
CAMERA_HOLD_REASON = "krádež, podezřelý Kamil Zloděj, č.j. KRPP-9988-2/TČ-2026"  # a hold's reason may name a person
CAMERA_HELD = recording(
    "cam-20261111T10", "2026-11-11T11:00:00+01:00", "/var/cctv/svkpk/entrance/20261111T10.mp4",
    legal_hold={"reason": CAMERA_HOLD_REASON, "until": "2027-03-31"},
)  # fmt: skip
POPULATION: list[dict[str, Any]] = [ADULT, CHILD, HELD, *LOANS, *INCIDENTS, EXCEPTION, CAMERA, CAMERA_HELD]

# what must never be readable in the database: whole values and plain-ASCII fragments of them
# (a fragment is found whatever the encoding: UTF-8, a JSON \u escape of the accented letters, ...)
SECRETS = [
    *PERSONAL.values(), *GUARDIAN.values(), HOLD_REASON, CAMERA_HOLD_REASON, "Kamil", "KRPP-9988",
    "Zelenkov", "Republiky 1234", "918273645", "kveta.stastna", "777 123 456",
    "Lhoteck", "Zahradn", "564738291", "KRPP-4471", "Vondr", "1984-04-03", "2013-05-06",
]  # fmt: skip


def needles(secret: str) -> set[str]:
    return {secret, json.dumps(secret)[1:-1]}  # as written, and as JSON writes it with ASCII escapes


def found_in_clear(work: Workspace, url: str, secrets: list[str]) -> list[str]:
    """Every place a secret is readable: a column value of any table, or the raw SQLite files."""
    hits = []
    for table, column, value in all_values(work.engine):
        for secret in secrets:
            for needle in needles(secret):
                if (isinstance(value, str) and needle in value) or (
                    isinstance(value, bytes) and needle.encode() in value
                ):
                    hits.append(f"{table}.{column}: {secret!r}")
    if not on_postgresql():
        for path in sqlite_files(url):
            data = path.read_bytes()
            hits.extend(
                f"{path.name}: {secret!r}" for secret in secrets if any(n.encode() in data for n in needles(secret))
            )
    return hits


# -- import and export ---------------------------------------------------------------------------


def test_import_then_export_round_trip(workspace: Workspace, ruleset: Ruleset, tmp_path: Path) -> None:
    summary = import_lines(workspace, ruleset, POPULATION)
    assert dict(summary.added) == {"reader": 3, "loan": 2, "incident": 1, "exception": 1, "camera_recording": 2}

    adult = access_copy(workspace.engine, workspace.master, "svkpk", "SV-4411")
    assert {k: v for k, v in adult["reader"].items() if v is not None} == ADULT
    assert adult["reader"]["personal"] == PERSONAL
    assert adult["reader"]["birth_date"] == "1984-04-03"
    assert adult["state"] == "active"
    assert adult["anonymised"] is False
    assert adult["loans"] == [
        {"library": "svkpk", "id": "L-9001", "reader": "SV-4411", "item": "item-L-9001", "borrowed_at": "2026-01-05",
         "due_at": "2026-02-05", "returned_at": "2026-02-01", "ill": False},
        {"library": "svkpk", "id": "L-9002", "reader": "SV-4411", "item": "item-L-9002", "borrowed_at": "2026-10-20",
         "due_at": "2026-11-20", "returned_at": None, "ill": True},
    ]  # fmt: skip
    assert adult["incidents"] == [
        {"library": "svkpk", "id": "I-301", "reader": "SV-4411", "kind": "expelled_from_premises", "at": "2026-01-15"}
    ]
    assert [(e["id"], e["rule"], e["role"], e["from"], e["until"]) for e in adult["exceptions"]] == [
        ("E-77", "svkpk.retention.after_settlement", "director", "2026-11-01", "2027-01-31")
    ]

    child = access_copy(workspace.engine, workspace.master, "svkpk", "SV-4412")
    assert {k: v for k, v in child["reader"].items() if v is not None} == CHILD
    assert child["reader"]["guardian"] == GUARDIAN
    assert child["loans"] == [] and child["incidents"] == []

    held = access_copy(workspace.engine, workspace.master, "zdirec", "ZD-5501")
    assert held["reader"]["legal_hold"] == {"reason": HOLD_REASON, "until": None}

    # the same through the command line: `kodex import FILE`, then `kodex export --reader --library`
    path = write_jsonl(tmp_path / "again.jsonl", [{**ADULT, "last_activity_at": "2026-11-01"}])
    imported = support.kodex("import", str(path))
    assert imported.exit_code == 0, imported.output
    exported = support.kodex("export", "--reader", "SV-4411", "--library", "svkpk")
    assert exported.exit_code == 0, exported.output
    copy = json.loads(exported.stdout)
    assert copy["reader"]["personal"] == PERSONAL
    assert copy["reader"]["last_activity_at"] == "2026-11-01"
    assert copy["loans"] == adult["loans"]


def test_importing_the_same_file_twice_changes_nothing(workspace: Workspace, ruleset: Ruleset, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "records.jsonl", POPULATION)
    first = import_file(workspace, ruleset, path)
    before = snapshot(workspace.engine)

    second = import_file(workspace, ruleset, path)

    assert not second.added and not second.updated
    assert second.unchanged == first.added
    assert snapshot(workspace.engine) == before  # every column of every row, keys and blobs included


def test_importing_the_same_file_after_a_run_changes_nothing(workspace: Workspace, ruleset: Ruleset) -> None:
    import_lines(workspace, ruleset, POPULATION)
    run_all(workspace, ruleset)
    before = snapshot(workspace.engine)

    summary = import_lines(workspace, ruleset, POPULATION)

    assert not summary.added and not summary.updated
    assert summary.gone["camera_recording"] == 1  # the purged recording is not taken in again
    assert snapshot(workspace.engine) == before


BAD_LINES = {
    2: reader("svkpk", "SV-0002", debt="10"),  # an amount written as text
    4: reader("svkpk", "SV-0004", personal={"first_name": "Bohdana", "nickname": "Bobinka Zlatovlasá"}),
    5: '{"type": "reader", "library": "svkpk", "id": "SV-0005"',  # not JSON at all
}


def mixed_file(tmp_path: Path) -> Path:
    good = {1: reader("svkpk", "SV-0001", debt=0), 3: loan("svkpk", "L-0003", "SV-0001"), 6: CHILD}
    return write_jsonl(tmp_path / "mixed.jsonl", [{**good, **BAD_LINES}[n] for n in range(1, 7)])


def test_an_invalid_line_rejects_the_whole_file_with_line_numbers(
    workspace: Workspace, ruleset: Ruleset, tmp_path: Path
) -> None:
    before = snapshot(workspace.engine)

    with pytest.raises(InvalidRecords) as raised:
        import_file(workspace, ruleset, mixed_file(tmp_path))

    problems = raised.value.problems
    assert sorted({p.line for p in problems}) == [2, 4, 5]
    assert {p.field for p in problems if p.line == 2} == {"debt"}
    assert {p.field for p in problems if p.line == 4} == {"personal"}
    message = str(raised.value)
    assert "line 2: debt" in message
    assert "Bobinka" not in message and "Bohdana" not in message  # no personal data in error messages
    assert snapshot(workspace.engine) == before  # nothing in the store, not even the valid lines


def test_skip_invalid_imports_the_valid_lines_and_reports_the_bad_ones(
    workspace: Workspace, ruleset: Ruleset, tmp_path: Path
) -> None:
    summary = import_file(workspace, ruleset, mixed_file(tmp_path), skip_invalid=True)

    assert sorted({p.line for p in summary.skipped}) == [2, 4, 5]
    assert dict(summary.added) == {"reader": 2, "loan": 1}
    with workspace.engine.connect() as connection:
        assert sorted(connection.execute(select(readers.c.id)).scalars()) == ["SV-0001", "SV-4412"]
        assert list(connection.execute(select(loans.c.id)).scalars()) == ["L-0003"]


def test_the_import_command_refuses_a_file_with_an_invalid_line(workspace: Workspace, tmp_path: Path) -> None:
    before = snapshot(workspace.engine)
    result = support.kodex("import", str(mixed_file(tmp_path)))
    assert result.exit_code == 4
    assert "line 2: debt" in result.output
    assert snapshot(workspace.engine) == before

    result = support.kodex("import", "--skip-invalid", str(mixed_file(tmp_path)))
    assert result.exit_code == 0, result.output
    assert "skipped line 4" in result.output


# -- encryption at rest --------------------------------------------------------------------------


def test_known_name_address_and_card_number_are_not_in_clear_in_the_database(
    workspace: Workspace, ruleset: Ruleset, database_url: str
) -> None:
    import_lines(workspace, ruleset, POPULATION)
    # the search itself works: the record ids are stored in clear, and it finds them
    assert found_in_clear(workspace, database_url, ["SV-4411"])

    assert found_in_clear(workspace, database_url, SECRETS) == []

    # nor after a run (decisions, findings, plans) and a dry run
    run_all(workspace, ruleset, dry_run=True)
    run_all(workspace, ruleset)
    assert found_in_clear(workspace, database_url, SECRETS) == []


ERASING = reader(
    "svkpk", "SV-4413", category="student", birth_date="1979-08-30", renewed_at="2025-09-01",
    last_activity_at="2026-06-12", debt=0, active_loans=0, erasure_requested_at="2026-11-15",
    guardian={"last_name": "Kubíčková-Nedomová"},
    personal={"first_name": "Svatopluk", "last_name": "Nedoma-Kubíček", "address": "Úslavská 2203/41, Plzeň",
              "id_document": "OP 771155339"},
)  # fmt: skip
ERASING_RECORDS = [
    ERASING,
    loan("svkpk", "L-9101", "SV-4413", returned_at="2026-02-01"),
    incident("svkpk", "I-401", "SV-4413", "expelled_from_premises", "2026-03-01"),
]


def sealed_of(work: Workspace, record_id: str) -> Any:
    with work.engine.connect() as connection:
        return connection.execute(select(readers).where(readers.c.id == record_id)).one()


def test_after_anonymise_the_personal_data_cannot_be_decrypted(
    workspace: Workspace, ruleset: Ruleset, database_url: str
) -> None:
    import_lines(workspace, ruleset, [*POPULATION, *ERASING_RECORDS])
    before = sealed_of(workspace, "SV-4413")
    assert reader_record(before.facts, before.wrapped_key, before.sealed, workspace.master)["personal"]

    result = run(workspace, ruleset, "svkpk")
    assert result.counts[("anonymise", "applied")] == 1

    row = sealed_of(workspace, "SV-4413")
    assert row.state == "anonymised"
    assert row.anonymised_at is not None
    assert (row.wrapped_key, row.sealed, row.digest, row.pseudonym) == (None, None, None, None)
    # what statistics need stays
    facts = row.facts
    assert facts["category"] == "student"
    assert facts["birth_year"] == 1979
    assert (facts["renewed_at"], facts["last_activity_at"]) == ("2025-09-01", "2026-06-12")
    assert (facts["debt"], facts["active_loans"]) == (0, 0)
    assert not {"personal", "guardian", "birth_date"} & set(facts)
    # every means kodex has to read a reader gives nothing personal
    assert not {"personal", "guardian", "birth_date", "legal_hold"} & set(
        reader_record(row.facts, row.wrapped_key, row.sealed, workspace.master)
    )
    copy = access_copy(workspace.engine, workspace.master, "svkpk", "SV-4413")
    assert copy["anonymised"] is True
    assert not {"personal", "guardian", "birth_date", "legal_hold"} & set(copy["reader"])
    assert copy["loans"] == [] and copy["incidents"] == []
    assert "Nedoma" not in json.dumps(copy, ensure_ascii=False)
    # the loans and incidents stay for statistics, detached from the reader
    with workspace.engine.connect() as connection:
        assert connection.execute(select(loans.c.reader).where(loans.c.id == "L-9101")).scalar_one() is None
        assert connection.execute(select(incidents.c.reader).where(incidents.c.id == "I-401")).scalar_one() is None
    # the destroyed key and ciphertext are nowhere in the store, and the old pseudonym links nothing to it
    for table, column, value in all_values(workspace.engine):
        assert value not in (before.wrapped_key, before.sealed), f"{table}.{column} still holds it"
        if table in {"readers", "camera_recordings", "loans", "incidents", "exceptions"}:
            assert value != before.pseudonym, f"{table}.{column} links the old pseudonym to the reader"
    # the other readers keep their data
    assert access_copy(workspace.engine, workspace.master, "svkpk", "SV-4411")["reader"]["personal"] == PERSONAL
    # and at rest (the store closed), the raw SQLite files do not hold the destroyed key either
    if not on_postgresql():
        workspace.engine.dispose()
        for path in sqlite_files(database_url):
            data = path.read_bytes()
            assert before.wrapped_key not in data and before.sealed not in data, path.name


@pytest.mark.skipif(
    on_postgresql(), reason="the SQLite write-ahead log; PostgreSQL keeps old row versions until VACUUM"
)
def test_right_after_anonymise_the_open_store_holds_no_copy_of_the_destroyed_key(
    workspace: Workspace, ruleset: Ruleset, database_url: str
) -> None:
    import_lines(workspace, ruleset, ERASING_RECORDS)
    before = sealed_of(workspace, "SV-4413")
    run(workspace, ruleset, "svkpk")
    assert sealed_of(workspace, "SV-4413").state == "anonymised"

    leftovers = [p.name for p in sqlite_files(database_url) if before.wrapped_key in p.read_bytes()]

    assert leftovers == []


def test_loans_and_incidents_of_an_anonymised_reader_stay_detached_when_imported_again(
    workspace: Workspace, ruleset: Ruleset
) -> None:
    import_lines(workspace, ruleset, ERASING_RECORDS)
    run(workspace, ruleset, "svkpk")
    assert sealed_of(workspace, "SV-4413").state == "anonymised"

    changed = [
        ERASING,
        loan("svkpk", "L-9101", "SV-4413", returned_at="2026-02-03"),  # the library corrected the return date
        loan("svkpk", "L-9102", "SV-4413", returned_at="2026-05-03"),  # an older loan the last export missed
        incident("svkpk", "I-401", "SV-4413", "expelled_from_premises", "2026-03-02"),
    ]
    import_lines(workspace, ruleset, changed)

    with workspace.engine.connect() as connection:
        attached = connection.execute(select(loans.c.id).where(loans.c.reader == "SV-4413")).scalars().all()
        attached += connection.execute(select(incidents.c.id).where(incidents.c.reader == "SV-4413")).scalars().all()
    assert attached == []


# -- the master key and the store must be right before anything is touched --------------------------


def start_all(commands: list[tuple[list[str], dict[str, str]]]) -> list[tuple[int, str]]:
    """Run several real `kodex` commands at once (each one starts a Python); their exit codes and stderr."""
    processes = [start_kodex(args, env) for args, env in commands]
    results = []
    for process in processes:
        _, err = process.communicate(timeout=120)
        results.append((process.returncode, err))
    return results


def test_a_missing_or_wrong_master_key_stops_before_touching_anything(
    workspace: Workspace, ruleset: Ruleset, kodex_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = write_jsonl(tmp_path / "records.jsonl", [*POPULATION, *ERASING_RECORDS])
    import_file(workspace, ruleset, write_jsonl(tmp_path / "first.jsonl", POPULATION))
    before = snapshot(workspace.engine)

    missing = tmp_path / "elsewhere" / "master.key"
    wrong = tmp_path / "other.key"
    wrong.write_bytes(MasterKey.generate())
    wrong.chmod(0o600)

    for key_file, says in ((missing, ["KODEX_MASTER_KEY_FILE", "kodex init"]), (wrong, ["KODEX_MASTER_KEY_FILE"])):
        monkeypatch.setenv("KODEX_MASTER_KEY_FILE", str(key_file))
        with pytest.raises(MasterKeyError) as raised:
            open_workspace(load_settings())
        assert all(s in str(raised.value) for s in says), str(raised.value)

    commands = []
    for key_file in (missing, wrong):
        env = child_env(kodex_env, KODEX_MASTER_KEY_FILE=str(key_file))
        commands += [(["run", "--as-of", "2026-11-22"], env), (["import", str(records)], env)]
    for code, err in start_all(commands):
        assert code == 7, err
        assert "master key" in err and "KODEX_MASTER_KEY_FILE" in err
        assert "Traceback" not in err
    assert not missing.exists()  # no new key was made up on the way
    assert snapshot(workspace.engine) == before


def test_a_store_not_initialised_says_to_run_kodex_init(kodex_env: dict[str, str], tmp_path: Path) -> None:
    key = Path(kodex_env["KODEX_MASTER_KEY_FILE"])
    key.parent.mkdir(parents=True)
    key.write_bytes(MasterKey.generate())
    key.chmod(0o600)

    with pytest.raises(StoreNotReady) as raised:
        open_workspace(load_settings())
    assert "`kodex init`" in str(raised.value)

    result = kodex_process(["run", "--as-of", "2026-11-22"], child_env(kodex_env))
    assert result.returncode == 7, result.stderr
    assert "kodex init" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("record_id", ["R-1", 'quo"te', "back\\slash", "Šťastný čtenář", "tab\there", "\x00\x1f", "😀"])
def test_a_readers_associated_data_is_its_canonical_json_so_sealed_records_stay_readable(record_id: str) -> None:
    # the AAD binds each sealed blob to its library and record id; the bytes must never change, or every
    # reader sealed before would fail to open
    assert reader_aad("svkpk", record_id) == canonical({"library": "svkpk", "reader": record_id})
    assert json.loads(reader_aad("svkpk", record_id)) == {"library": "svkpk", "reader": record_id}


@pytest.mark.skipif(not on_postgresql(), reason="a PostgreSQL server's connections can die under the pool")
def test_a_pooled_postgresql_connection_that_died_while_idle_is_replaced_unseen(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = connect(database_url)
    pings = []
    ping = engine.dialect.do_ping
    monkeypatch.setattr(engine.dialect, "do_ping", lambda connection: pings.append(1) or ping(connection))
    with engine.connect() as connection:
        first = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
    with engine.connect() as connection:  # used again at once: not pinged (a busy service pays no round trip)
        assert connection.execute(text("SELECT pg_backend_pid()")).scalar_one() == first
    assert pings == []
    admin = create_engine(database_url)
    with admin.begin() as connection:  # the server ends the pooled connection's backend (as a restart would)
        connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
    admin.dispose()
    monkeypatch.setattr(store_database, "IDLE_PING_SECONDS", 0.0)
    with engine.connect() as connection:  # idle long enough: pinged, found dead, replaced; the caller sees nothing
        assert connection.execute(text("SELECT pg_backend_pid()")).scalar_one() != first
    assert pings == [1]
    engine.dispose()


# -- the loader's batch queries ---------------------------------------------------------------------------------------

_BATCH_QUERIES = {  # each reads a batch's rows by a list of subjects: an index must seek each subject
    "returned loans": (_RETURNED, "ix_loans_reader", "reader"),
    "incidents": (_INCIDENTS, "ix_incidents_reader", "reader"),
    "exceptions": (_GRANTS, "ix_exceptions_subject", "subject"),
    "findings": (_FINDINGS, "sqlite_autoindex_findings_1", "subject"),
    "kodex holds": (_HOLDS, "sqlite_autoindex_legal_holds_1", "subject"),
}


@pytest.mark.parametrize("name", sorted(_BATCH_QUERIES))
def test_a_batchs_side_query_seeks_each_subject_in_its_index_on_sqlite(name: str) -> None:
    """Not the library's whole index range per batch: that made SQLite's job slower per reader as the store grew."""
    statement, index, column = _BATCH_QUERIES[name]
    engine = create_engine("sqlite://")
    metadata.create_all(engine)
    values = {"library": "svkpk", "ids": ["R-1", "R-2"], "pseudonyms": ["p1", "p2"], "subject_type": "reader"}
    sql = str(statement.params(values).compile(engine, compile_kwargs={"literal_binds": True}))
    with engine.connect() as connection:
        plan = " ".join(row[-1] for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}"))
    engine.dispose()
    seek = re.search(rf"SEARCH \w+ USING (?:COVERING )?INDEX {index} \(([^)]*)\)", plan)
    assert seek is not None, plan
    assert f"{column}=?" in seek.group(1), plan  # each subject sought, not the library's whole range scanned


def test_a_list_of_subjects_is_one_array_parameter_on_postgresql() -> None:
    assert "= ANY (%(ids)s::" in str(_RETURNED.compile(dialect=postgresql.dialect()))
