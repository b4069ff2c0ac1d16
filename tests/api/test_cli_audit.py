"""`kodex audit …` and `kodex decisions`: the auditor's commands over the tamper-evident decision log.

Every test works on an installation that imported the bundled sample population and ran it on two
nights, so each library has a log of its own with several checkpoints: one shared by the tests that
only read, one of its own for a test that changes the log or its keys. Exit code 9 means the log or a
proof does not verify (api/cli.py).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import ColumnElement, Engine, func, select, update
from typer.testing import Result

from kodex.audit.merkle import verify_inclusion
from kodex.store.database import connect
from kodex.store.schema import decision_log, log_checkpoints, runs
from tests.audit.support import around_the_triggers
from tests.retention.support import clock_at
from tests.support import AGREEMENT, KODEX, SAMPLE, fresh_store, installation_env, kodex, ok

FIRST_NIGHT, SECOND_NIGHT = "2026-11-22", "2027-03-15"
FIRST_DAY, SECOND_DAY = date.fromisoformat(FIRST_NIGHT), date.fromisoformat(SECOND_NIGHT)
LIBRARIES = ("kntb", "svkpk", "zdirec")
MORE = re.compile(r"add --after (\d+)")
log = decision_log.c


def installed(url: str) -> Engine:
    """`kodex init`, the sample imported, and the nightly job run on two nights (KODEX_* set): the store's engine."""
    ok("init")
    ok(*AGREEMENT)
    ok("import", str(SAMPLE))
    ok("run", "--as-of", FIRST_NIGHT, "--wait", "60")
    ok("run", "--as-of", SECOND_NIGHT, "--wait", "60")
    return connect(url)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """One installation for the tests that only read the log (verify, prove, export, query)."""
    home = tmp_path_factory.mktemp("shared")
    with fresh_store(home) as url, pytest.MonkeyPatch.context() as patch:
        installation_env(home, url, patch)
        clock_at(patch, SECOND_NIGHT)
        engine = installed(url)
        yield engine
        engine.dispose()


@pytest.fixture
def store(kodex_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """An installation of the test's own, for the tests that change the log or its keys."""
    clock_at(monkeypatch, SECOND_NIGHT)
    engine = installed(kodex_env["KODEX_DATABASE_URL"])
    yield engine
    engine.dispose()


def rows(engine: Engine, where: ColumnElement[bool] | None = None, order: str = "seq") -> list[Any]:
    """decision_log rows (optionally filtered) in log order: `seq`, or `library, idx` as exports are."""
    statement = select(decision_log)
    if where is not None:
        statement = statement.where(where)
    keys = [log.seq] if order == "seq" else [log.library, log.idx]
    with engine.connect() as connection:
        return list(connection.execute(statement.order_by(*keys)))


def checkpoint_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        found = connection.execute(
            select(log_checkpoints.c.library, func.count()).group_by(log_checkpoints.c.library)
        ).all()
    return {library: count for library, count in found}


def keys_file(tmp_path: Path, name: str = "kodex-keys.pem") -> Path:
    path = tmp_path / name
    path.write_text(ok("audit", "public-key", "--all").stdout, encoding="utf-8")
    return path


def jsonl(result: Result) -> list[dict[str, Any]]:
    return [json.loads(text) for text in result.stdout.splitlines()]


def tamper(engine: Engine, library: str, index: int, change: Callable[[str], str]) -> str:
    """Change one stored entry behind the log's back (the append-only trigger goes first); its id."""
    with around_the_triggers(engine) as connection:
        where = (log.library == library) & (log.idx == index)
        row = connection.execute(select(log.id, log.entry).where(where)).one()
        changed = change(row.entry)
        assert changed != row.entry
        connection.execute(update(decision_log).where(where).values(entry=changed))
    return str(row.id)


# -- verify ----------------------------------------------------------------------------------------


def test_verify_says_each_library_is_intact_and_exits_9_naming_a_changed_entry(store: Engine) -> None:
    result = ok("audit", "verify")
    checkpoints = checkpoint_counts(store)
    for library in LIBRARIES:
        entries = len(rows(store, log.library == library))
        assert f"{library}: {entries} entries, {checkpoints[library]} checkpoint(s) — intact" in result.stdout
    assert "NOT intact" not in result.stdout

    applied = rows(store, (log.library == "kntb") & (log.outcome == "applied"), order="idx")
    index = applied[len(applied) // 2].idx
    entry_id = tamper(store, "kntb", index, lambda text: text.replace('"outcome":"applied"', '"outcome":"retained"'))

    broken = kodex("audit", "verify")

    assert broken.exit_code == 9, broken.output
    assert f"kntb: entry {index} (id {entry_id}): its text does not hash to the leaf hash" in broken.stderr
    verdicts = {line.split(":")[0]: line for line in broken.stdout.splitlines() if " entries, " in line}
    assert verdicts["kntb"].endswith("— NOT intact")
    assert verdicts["svkpk"].endswith("— intact") and verdicts["zdirec"].endswith("— intact")


def test_verify_with_the_exported_public_keys_passes(shared: Engine, tmp_path: Path) -> None:
    result = ok("audit", "verify", "--public-key", str(keys_file(tmp_path)))
    assert "every checkpoint verifies with the trusted keys given" in result.stdout


def test_verify_with_another_ed25519_key_exits_9_saying_the_key_is_not_trusted(shared: Engine, tmp_path: Path) -> None:
    stranger = Ed25519PrivateKey.generate().public_key()
    pem = stranger.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    (tmp_path / "stranger.pem").write_bytes(pem)

    result = kodex("audit", "verify", "--public-key", str(tmp_path / "stranger.pem"))

    assert result.exit_code == 9, result.output
    assert "which is not among the trusted keys given" in result.stderr


def test_verify_with_a_file_holding_no_pem_key_exits_2_with_a_clear_error(shared: Engine, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("the auditor's notes, no key here\n", encoding="utf-8")

    result = kodex("audit", "verify", "--public-key", str(tmp_path / "notes.txt"))

    assert result.exit_code == 2, result.output
    assert "not a public key file" in result.stderr
    assert "no PEM public key found" in result.stderr
    assert "kodex audit public-key --all" in result.stderr


# -- prove and verify-proof -------------------------------------------------------------------------


def a_decision(engine: Engine) -> Any:
    """A decision entry in the middle of svkpk's log (its proof has a path of several hashes)."""
    found = rows(engine, (log.library == "svkpk") & (log.kind == "decision"), order="idx")
    return found[len(found) // 2]


def test_prove_prints_json_with_the_entry_its_index_tree_size_path_and_signed_checkpoint(shared: Engine) -> None:
    row = a_decision(shared)

    proof = json.loads(ok("audit", "prove", row.id).stdout)

    assert {"entry", "leaf_index", "tree_size", "inclusion_proof", "checkpoint"} <= proof.keys()
    assert proof["entry"] == json.loads(row.entry)
    assert proof["leaf_index"] == row.idx
    with shared.connect() as connection:
        newest = connection.execute(
            select(log_checkpoints).where(log_checkpoints.c.library == "svkpk").order_by(log_checkpoints.c.id.desc())
        ).first()
    assert newest is not None
    assert proof["tree_size"] == newest.size == proof["checkpoint"]["size"]
    assert proof["checkpoint"]["root"] == base64.b64encode(bytes(newest.root)).decode()
    path = [base64.b64decode(h) for h in proof["inclusion_proof"]]
    assert verify_inclusion(row.idx, newest.size, bytes(row.leaf_hash), path, bytes(newest.root))


def test_verify_proof_passes_on_a_machine_with_no_database_configured(shared: Engine, tmp_path: Path) -> None:
    entry_id = a_decision(shared).id
    proof = tmp_path / "proof.json"
    proof.write_text(ok("audit", "prove", entry_id).stdout, encoding="utf-8")
    keys = keys_file(tmp_path)
    nowhere = tmp_path / "nowhere"
    auditor = {name: value for name, value in os.environ.items() if not name.startswith("KODEX_")}
    auditor |= {
        "KODEX_HOME": str(nowhere / "home"),
        "KODEX_DATABASE_URL": f"sqlite:///{nowhere / 'kodex.sqlite3'}",
        "KODEX_MASTER_KEY_FILE": str(nowhere / "master.key"),
    }

    completed = subprocess.run(
        [str(KODEX), "audit", "verify-proof", str(proof), "--public-key", str(keys)],
        env=auditor, capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip

    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.startswith(f"proof verifies: entry {entry_id} is entry ")
    assert "of the log kodex/svkpk" in completed.stdout
    assert not nowhere.exists()  # nothing was looked up or created there


def test_verify_proof_reads_the_proof_from_standard_input(shared: Engine, tmp_path: Path) -> None:
    proof = ok("audit", "prove", a_decision(shared).id).stdout

    result = kodex("audit", "verify-proof", "-", "--public-key", str(keys_file(tmp_path)), stdin=proof)

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("proof verifies: ")


def test_verify_proof_refuses_a_deeply_nested_file_with_exit_2_before_parsing_it(
    shared: Engine, tmp_path: Path
) -> None:
    crafted = "[" * 100_000 + "]" * 100_000  # json.loads would end in a RecursionError

    result = kodex("audit", "verify-proof", "-", "--public-key", str(keys_file(tmp_path)), stdin=crafted)

    assert result.exit_code == 2, result.output
    assert "nested more than 32 levels" in result.output
    assert not isinstance(result.exception, RecursionError)


def flip_last(text: str) -> str:
    return text[:-1] + ("x" if text[-1] != "x" else "y")


@pytest.mark.parametrize(
    ("part", "field", "failing_check"),
    [
        ("entry", "outcome", "does not lead from the entry to the signed root"),
        ("checkpoint", "time", "signature does not verify"),
    ],
    ids=["in-the-entry", "in-the-checkpoint"],
)
def test_a_proof_with_one_character_changed_exits_9(
    shared: Engine, tmp_path: Path, part: str, field: str, failing_check: str
) -> None:
    text = ok("audit", "prove", a_decision(shared).id).stdout
    proof = json.loads(text)
    proof[part][field] = flip_last(proof[part][field])
    changed = json.dumps(proof, ensure_ascii=False, indent=2) + "\n"
    assert sum(a != b for a, b in zip(text, changed, strict=True)) == 1
    (tmp_path / "proof.json").write_text(changed, encoding="utf-8")

    result = kodex("audit", "verify-proof", str(tmp_path / "proof.json"), "--public-key", str(keys_file(tmp_path)))

    assert result.exit_code == 9, result.output
    assert "the proof does not verify" in result.stderr
    assert failing_check in result.stderr


def test_prove_an_unknown_entry_id_exits_6(shared: Engine) -> None:
    result = kodex("audit", "prove", "00000000-0000-4000-8000-000000000000")
    assert result.exit_code == 6, result.output
    assert "no entry 00000000-0000-4000-8000-000000000000 in the decision log" in result.stderr


# -- export ----------------------------------------------------------------------------------------


def test_export_writes_json_lines_exactly_as_hashed(shared: Engine) -> None:
    lines = ok("audit", "export").stdout.splitlines()

    stored = rows(shared, order="idx")
    assert len(lines) == len(stored) > 0
    for line, row in zip(lines, stored, strict=True):
        assert hashlib.sha256(b"\x00" + line.encode("utf-8")).digest() == bytes(row.leaf_hash)


@pytest.mark.parametrize(
    ("options", "where"),
    [
        (["--library", "svkpk"], log.library == "svkpk"),
        (["--rule", "zdirec.suspension.unsettled_debt"], log.rule == "zdirec.suspension.unsettled_debt"),
        (["--action", "anonymise"], log.action == "anonymise"),
        (["--kind", "run_summary"], log.kind == "run_summary"),
        (["--from", SECOND_NIGHT], log.day >= SECOND_DAY),
        (["--to", FIRST_NIGHT], log.day <= FIRST_DAY),
        (["--library", "kntb", "--action", "registration_expired", "--from", FIRST_NIGHT, "--to", FIRST_NIGHT],
         (log.library == "kntb") & (log.action == "registration_expired") & (log.day == FIRST_DAY)),
    ],
    ids=["library", "rule", "action", "kind", "from", "to", "library-action-one-day"],
)  # fmt: skip
def test_export_filters_select_the_matching_entries_of_the_log(
    shared: Engine, options: list[str], where: ColumnElement[bool]
) -> None:
    lines = ok("audit", "export", *options).stdout.splitlines()

    expected = [row.entry for row in rows(shared, where, order="idx")]
    assert lines == expected
    assert 0 < len(expected) < len(rows(shared))  # the filter selects something, and leaves something out


# -- decisions -------------------------------------------------------------------------------------


def busiest_subject(engine: Engine) -> tuple[list[str], ColumnElement[bool]]:
    with engine.connect() as connection:
        subject = connection.execute(
            select(log.subject)
            .where(log.subject.is_not(None))
            .group_by(log.subject)
            .order_by(func.count().desc())
            .limit(1)
        ).scalar_one()
    return ["--subject", subject], log.subject == subject


def second_svkpk_run(engine: Engine) -> tuple[list[str], ColumnElement[bool]]:
    with engine.connect() as connection:
        run_id = connection.execute(
            select(runs.c.id).where(runs.c.library == "svkpk", runs.c.as_of == SECOND_NIGHT)
        ).scalar_one()
    return ["--run", run_id], log.run_id == run_id


def fixed(options: list[str], where: ColumnElement[bool]) -> Callable[[Engine], tuple[list[str], Any]]:
    return lambda _: (options, where)


@pytest.mark.parametrize(
    "selection",
    [
        fixed(["--library", "zdirec"], log.library == "zdirec"),
        fixed(["--rule", "kntb.registration.one_year"], log.rule == "kntb.registration.one_year"),
        fixed(["--action", "purge"], log.action == "purge"),
        busiest_subject,
        second_svkpk_run,
        fixed(["--kind", "exception_granted"], log.kind == "exception_granted"),
        fixed(["--outcome", "proposed"], log.outcome == "proposed"),
        fixed(["--from", FIRST_NIGHT, "--to", FIRST_NIGHT], log.day == FIRST_DAY),
        fixed(["--library", "svkpk", "--kind", "decision", "--outcome", "applied", "--from", SECOND_NIGHT],
              (log.library == "svkpk") & (log.kind == "decision") & (log.outcome == "applied") & (log.day >= SECOND_DAY)),
    ],
    ids=["library", "rule", "action", "subject", "run", "kind", "outcome", "days", "combined"],
)  # fmt: skip
def test_decisions_select_by_each_filter(
    shared: Engine, selection: Callable[[Engine], tuple[list[str], ColumnElement[bool]]]
) -> None:
    options, where = selection(shared)

    found = jsonl(ok("decisions", *options, "--format", "jsonl", "--all"))

    expected = rows(shared, where)
    assert found == [json.loads(row.entry) for row in expected]
    assert 0 < len(expected) < len(rows(shared))


@pytest.mark.parametrize("last_page", ["short", "full"])
def test_decisions_pages_visit_every_matching_entry_once_in_order(shared: Engine, last_page: str) -> None:
    expected = [row.id for row in rows(shared, log.library == "svkpk")]
    exact = next(n for n in range(len(expected) // 3, 0, -1) if len(expected) % n == 0)
    limit = exact if last_page == "full" else exact + 1
    seen: list[str] = []
    after: str | None = "0"
    pages = 0
    while after is not None:
        page = ok("decisions", "--library", "svkpk", "--format", "jsonl", "--limit", str(limit), "--after", after)
        entries = jsonl(page)
        assert len(entries) <= limit
        seen += [entry["id"] for entry in entries]
        more = MORE.search(page.stderr)
        assert (more is not None) == (len(entries) == limit)  # a full page says how to continue
        after = more.group(1) if more else None
        pages += 1
        assert pages <= len(expected) // limit + 2

    assert seen == expected


def test_decisions_all_returns_every_entry_in_log_order(shared: Engine) -> None:
    result = ok("decisions", "--all", "--format", "jsonl")

    assert [entry["id"] for entry in jsonl(result)] == [row.id for row in rows(shared)]
    assert len(rows(shared)) > 50  # more than one page of the default --limit
    assert "--after" not in result.stderr


def test_decisions_table_lists_the_entries_of_a_page(shared: Engine) -> None:
    result = ok("decisions", "--kind", "exception_granted")
    for row in rows(shared, log.kind == "exception_granted"):
        assert row.id in result.stdout


# -- checkpoints and keys --------------------------------------------------------------------------


def test_checkpoint_signs_a_new_checkpoint_for_each_library(store: Engine) -> None:
    before = checkpoint_counts(store)

    result = ok("audit", "checkpoint")

    assert checkpoint_counts(store) == {library: before[library] + 1 for library in LIBRARIES}
    for library in LIBRARIES:
        entries = len(rows(store, log.library == library))
        assert f"kodex/{library}: {entries} entries, root " in result.stdout
    ok("audit", "verify")


def test_rotate_key_keeps_the_log_verifying_and_public_key_all_lists_both_keys(store: Engine, tmp_path: Path) -> None:
    old_keys = keys_file(tmp_path, "old.pem")
    [old] = re.findall(r"# kodex checkpoint key (\w+)", old_keys.read_text(encoding="utf-8"))

    rotated = ok("audit", "rotate-key")

    [new] = re.findall(r"signing key (\w+) is active", rotated.stdout)
    assert f"{old} retired" in rotated.stdout
    ok("audit", "verify")
    listed = ok("audit", "public-key", "--all").stdout
    assert re.findall(r"# kodex checkpoint key (\w+)", listed) == [old, new]
    assert listed.count("-----BEGIN PUBLIC KEY-----") == 2
    assert re.findall(r"# kodex checkpoint key (\w+)", ok("audit", "public-key").stdout) == [new]

    assert f"signed by key {new}" in ok("audit", "checkpoint").stdout
    ok("audit", "verify")
    ok("audit", "verify", "--public-key", str(keys_file(tmp_path, "both.pem")))
    assert kodex("audit", "verify", "--public-key", str(old_keys)).exit_code == 9  # the new key is not in that file


# -- help ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "says"),
    [
        (["audit"], ["The tamper-evident decision log: verify it, prove an entry, export it, sign checkpoints",
                     "Exit code 9", "verify", "prove", "verify-proof", "export", "checkpoint", "public-key",
                     "rotate-key"]),
        (["decisions"], ["Query the decision log: by library, rule, action, subject pseudonym, run, kind, outcome",
                         "keyset-paginated", "--after", "--limit", "--all", "--subject", "--run"]),
    ],
    ids=["audit", "decisions"],
)  # fmt: skip
def test_help_says_what_the_command_does(command: list[str], says: list[str]) -> None:
    result = kodex(*command, "--help")
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.replace("│", " ").split())
    for words in says:
        assert words in text
