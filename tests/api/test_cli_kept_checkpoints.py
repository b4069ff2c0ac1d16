"""Rolling the decision log back is caught by checkpoints kept outside kodex (issue 16).

Before: restoring an older copy of the database, or deleting entries back to an old checkpoint, verified as
"intact", since nothing outside the store remembered the log. An auditor or a witness now keeps signed
checkpoint notes (`kodex audit checkpoint --format note`) and verifies the log against them
(`kodex audit verify --library ID --checkpoint FILE`): exit 9 when the log is smaller than a kept checkpoint or
does not extend it. Each test makes the roll-back first look "intact" to a plain verify: that is the attack.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Engine, delete, select, update
from typer.testing import Result

from kodex.audit.log import append, checkpoint
from kodex.audit.merkle import Frontier
from kodex.config import load_settings
from kodex.services.setup import open_workspace
from kodex.store.schema import decision_log, log_checkpoints, log_heads, log_subtrees, metadata
from tests.api.test_cli_audit import installed, keys_file
from tests.audit.support import around_the_triggers
from tests.retention.support import clock_at
from tests.support import kodex, ok

LIBRARY = "svkpk"
THIRD_NIGHT = "2027-06-01"


@pytest.fixture
def store(kodex_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    clock_at(monkeypatch, THIRD_NIGHT)
    engine = installed(kodex_env["KODEX_DATABASE_URL"])
    yield engine
    engine.dispose()


def kept_note(tmp_path: Path, library: str = LIBRARY, name: str = "kept.note") -> Path:
    """What a witness's cron job does: `kodex audit checkpoint --library ID --format note >> FILE`."""
    path = tmp_path / name
    with path.open("a", encoding="utf-8") as file:
        file.write(ok("audit", "checkpoint", "--library", library, "--format", "note").stdout)
    return path


def size_of(engine: Engine, library: str = LIBRARY) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(log_heads.c.size).where(log_heads.c.library == library)).scalar_one())


def verify_against(path: Path, *more: str) -> Result:
    return kodex("audit", "verify", "--library", LIBRARY, "--checkpoint", str(path), *more)


def assert_rolled_back_unseen_by_a_plain_verify() -> None:
    assert "intact" in ok("audit", "verify", "--library", LIBRARY).stdout


# -- the note --------------------------------------------------------------------------------------------------------


def test_checkpoint_format_note_prints_a_c2sp_checkpoint_that_the_vkey_verifies(store: Engine) -> None:
    note = ok("audit", "checkpoint", "--library", LIBRARY, "--format", "note").stdout
    (vkey,) = ok("audit", "public-key", "--format", "vkey", "--library", LIBRARY).stdout.splitlines()
    # the signed-note rules, re-derived here from c2sp.org/signed-note (not with audit.note)
    text, signatures = note.split("\n\n")
    origin, size, root, time = text.split("\n")
    assert (origin, int(size), len(base64.b64decode(root, validate=True))) == (f"kodex/{LIBRARY}", size_of(store), 32)
    assert time.startswith("time ")
    name, key_hash_hex, key = vkey.split("+", 2)
    material = base64.b64decode(key)
    assert (name, material[0], len(material)) == (origin, 0x01, 33)
    assert hashlib.sha256(name.encode() + b"\n" + material).digest()[:4].hex() == key_hash_hex
    dash, signer, blob = signatures.rstrip("\n").split(" ")
    signed = base64.b64decode(blob)
    assert (dash, signer, signed[:4].hex(), len(signed)) == ("\u2014", name, key_hash_hex, 68)
    Ed25519PublicKey.from_public_bytes(material[1:]).verify(signed[4:], (text + "\n").encode())  # raises if bad


def test_the_note_is_the_checkpoint_the_store_signed_no_second_signature(store: Engine, tmp_path: Path) -> None:
    note = kept_note(tmp_path).read_text(encoding="utf-8")
    with store.connect() as connection:
        newest = connection.execute(
            select(log_checkpoints.c.signature).order_by(log_checkpoints.c.id.desc()).limit(1)
        ).scalar_one()
    assert base64.b64decode(note.split(" ")[-1])[4:] == bytes(newest)


# -- verifying against kept checkpoints ------------------------------------------------------------------------------


def test_verify_against_a_kept_checkpoint_passes_when_the_log_only_grew(store: Engine, tmp_path: Path) -> None:
    kept = kept_note(tmp_path)
    ok("run", "--as-of", THIRD_NIGHT, "--wait", "60")
    kept_note(tmp_path)  # the witness's file grows by a note a night
    result = ok("audit", "verify", "--library", LIBRARY, "--checkpoint", str(kept), "--public-key",
                str(keys_file(tmp_path)))  # fmt: skip
    assert "the log extends the 2 checkpoint(s) you kept" in result.stdout


def backup(engine: Engine) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table: an older copy of the database."""
    with engine.connect() as connection:
        return {t.name: [dict(r._mapping) for r in connection.execute(select(t))] for t in metadata.sorted_tables}


def restore(engine: Engine, copy: dict[str, list[dict[str, Any]]]) -> None:
    """Put the older copy back, as an operator restoring a backup does (the log's triggers are no obstacle)."""
    with around_the_triggers(engine) as connection:
        for table in reversed(metadata.sorted_tables):
            connection.execute(delete(table))
        for table in metadata.sorted_tables:
            if copy[table.name]:
                connection.execute(table.insert(), copy[table.name])


def test_verify_against_a_kept_checkpoint_fails_after_an_older_copy_of_the_database_is_restored(
    store: Engine, tmp_path: Path
) -> None:
    older = backup(store)
    ok("run", "--as-of", THIRD_NIGHT, "--wait", "60")
    kept, later = kept_note(tmp_path), size_of(store)
    restore(store, older)
    assert_rolled_back_unseen_by_a_plain_verify()

    result = verify_against(kept)

    assert result.exit_code == 9, result.output
    assert (
        f"the log has {size_of(store)} entries, the checkpoint you kept has {later}: "
        "entries were removed or an older copy restored"
    ) in result.output


def cut_back(engine: Engine, size: int) -> list[dict[str, Any]]:
    """Delete the entries from index `size` on, the checkpoints and subtrees over them, and set the head back to
    `size`: the log as it was then, self-consistent (around the triggers, as an attacker with the database can).
    The entries removed, in order."""
    log = decision_log.c
    with around_the_triggers(engine) as connection:
        rows = connection.execute(select(log.entry, log.leaf_hash).where(log.library == LIBRARY).order_by(log.idx))
        leaves = [(json.loads(r.entry), bytes(r.leaf_hash)) for r in rows]
        frontier = Frontier()
        for _, hashed in leaves[:size]:
            frontier.append(hashed)
        connection.execute(delete(decision_log).where(log.library == LIBRARY, log.idx >= size))
        connection.execute(
            delete(log_checkpoints).where(log_checkpoints.c.library == LIBRARY, log_checkpoints.c.size > size)
        )
        for row in connection.execute(select(log_subtrees).where(log_subtrees.c.library == LIBRARY)).all():
            if (row.position + 1) << row.height > size:
                connection.execute(
                    delete(log_subtrees).where(
                        log_subtrees.c.library == LIBRARY,
                        log_subtrees.c.height == row.height,
                        log_subtrees.c.position == row.position,
                    )
                )
        connection.execute(
            update(log_heads).where(log_heads.c.library == LIBRARY).values(size=size, frontier=frontier.to_bytes())
        )
    return [entry for entry, _ in leaves[size:]]


def first_checkpoint_size(engine: Engine) -> int:
    with engine.connect() as connection:
        sizes = connection.execute(
            select(log_checkpoints.c.size).where(log_checkpoints.c.library == LIBRARY).order_by(log_checkpoints.c.id)
        ).scalars()
        return next(size for size in sizes if size > 0)


def test_verify_against_a_kept_checkpoint_fails_when_entries_are_deleted_back_to_an_old_checkpoint(
    store: Engine, tmp_path: Path
) -> None:
    kept, later, earlier = kept_note(tmp_path), size_of(store), first_checkpoint_size(store)
    assert earlier < later
    cut_back(store, earlier)
    assert_rolled_back_unseen_by_a_plain_verify()

    result = verify_against(kept)

    assert result.exit_code == 9, result.output
    assert f"the log has {earlier} entries, the checkpoint you kept has {later}" in result.output


def test_verify_against_a_kept_checkpoint_fails_when_history_is_rewritten_and_re_signed(
    store: Engine, tmp_path: Path
) -> None:
    """Someone with the database and the master key cuts the log back, appends the same number of entries with one
    changed, and signs a new checkpoint: the store agrees with itself, the kept checkpoint does not."""
    kept, later, earlier = kept_note(tmp_path), size_of(store), first_checkpoint_size(store)
    removed = cut_back(store, earlier)
    removed[0] = {**removed[0], "outcome": "retained" if removed[0]["outcome"] != "retained" else "applied"}
    work = open_workspace(load_settings())
    with work.engine.begin() as connection:
        append(connection, LIBRARY, store_day(removed[0]), removed)
        checkpoint(connection, LIBRARY, work.master, "2027-03-16T01:00:00.000000+00:00")
    work.engine.dispose()
    assert size_of(store) == later
    assert_rolled_back_unseen_by_a_plain_verify()

    result = verify_against(kept)

    assert result.exit_code == 9, result.output
    assert f"the log does not extend the checkpoint of size {later} you kept" in result.output


def store_day(entry: dict[str, Any]) -> date:
    return date.fromisoformat(entry["as_of"][:10])


def test_verify_against_a_note_with_a_bad_signature_exits_9(store: Engine, tmp_path: Path) -> None:
    kept = kept_note(tmp_path)
    note = kept.read_text(encoding="utf-8")
    size = note.split("\n")[1]
    kept.write_text(note.replace(f"\n{size}\n", f"\n{int(size) - 1}\n", 1), encoding="utf-8")

    result = verify_against(kept)

    assert result.exit_code == 9, result.output
    assert "the checkpoint you kept: the checkpoint's signature by key" in result.output
    assert "does not verify" in result.output


def test_verify_against_another_librarys_note_is_refused_with_exit_9(store: Engine, tmp_path: Path) -> None:
    kept = kept_note(tmp_path, library="kntb")

    result = verify_against(kept)

    assert result.exit_code == 9, result.output
    assert "the checkpoint is of the log 'kodex/kntb', not of 'kodex/svkpk'" in result.output


def test_verify_with_a_kept_checkpoint_needs_the_library(store: Engine, tmp_path: Path) -> None:
    result = kodex("audit", "verify", "--checkpoint", str(kept_note(tmp_path)))
    assert result.exit_code == 2
    assert "--library" in result.output
