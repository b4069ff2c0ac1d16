"""Upgrading a store from before the decision log (schema 0001) keeps every decision it had recorded and encrypts
what it kept in clear."""

from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC, date, datetime

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, text

from kodex.audit.verify import verify_log
from kodex.store.crypto import MasterKey
from kodex.store.database import _MIGRATIONS, connect, upgrade

OLD_DECISION = {
    "library": "kntb",
    "subject_type": "reader",
    "subject": "5f0c0ffee5f0c0ffee5f0c0ffee5f0c0",
    "rule": "kntb.retention.unused_for_a_year",
    "action": "retain",
    "effect": "apply",
    "outcome": "retained",
    "cite": "V. odst. 4",
    "as_of": "2026-11-22",
    "policy_revision": "a" * 64,
    "reasons": [
        {"condition": "citizenship not in free_movement_states", "holds": True, "values": {"citizenship": "US"}}
    ],
    "exception": {"id": "E-CARD-1234", "role": "director", "from": "2026-01-01", "until": "2027-01-01"},
    "decision_id": "11111111-2222-3333-4444-555555555555",
    "run_id": "99999999-8888-7777-6666-555555555555",
}


MASTER = MasterKey(os.urandom(32))

# OLD_DECISION's entry exactly as migration 0002 logs it (schema 1, canonical JSON): the migration keeps its own
# frozen copy of the log's format, and this catches it drifting. {exception}: the pseudonym given to E-CARD-1234;
# {time}: when it was recorded, as the 0001 store gave it back.
LOGGED = (
    '{"action":"retain","actor":{"id":"99999999-8888-7777-6666-555555555555","role":null,"type":"run"},'
    '"as_of":"2026-11-22","cite":"V. odst. 4","details":{"exception":{"from":"2026-01-01","role":"director",'
    '"until":"2027-01-01"}},"effect":"apply","exception":"{exception}","id":"11111111-2222-3333-4444-555555555555",'
    '"kind":"decision","library":"kntb","outcome":"retained","policy_revision":"' + "a" * 64 + '","reasons":[{'
    '"condition":"citizenship not in free_movement_states","due_after":null,"holds":true,"values":{"citizenship":'
    '"(withheld: personal data)"}}],"rule":"kntb.retention.unused_for_a_year","run":'
    '"99999999-8888-7777-6666-555555555555","subject":"5f0c0ffee5f0c0ffee5f0c0ffee5f0c0","subject_type":"reader",'
    '"time":"{time}","version":1}'
)


def store_at_0001(database_url: str, *, keyed: bool = False) -> Engine:
    """A store at schema 0001 (before the decision log) with library kntb; `keyed`: MASTER recorded as its key."""
    engine = connect(database_url)
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
        connection.execute(text("INSERT INTO libraries (id, name, time_zone) VALUES ('kntb', 'KNTB', 'Europe/Prague')"))
        if keyed:
            connection.execute(
                text("INSERT INTO keyring (name, check_value, created_at) VALUES ('master', :check, :at)"),
                {"check": MASTER.check_value(), "at": datetime.now(UTC)},
            )
    return engine


def upgraded_from_0001(database_url: str) -> Engine:
    """A 0001 store holding a run, an exception kept in clear and a decision of it, upgraded with MASTER."""
    engine = store_at_0001(database_url, keyed=True)
    with engine.begin() as connection:
        connection.execute(
            text(
                'INSERT INTO runs (id, library, as_of, as_of_day, dry_run, "full", policy_revision, status, started_at)'
                " VALUES (:id, 'kntb', '2026-11-22', :day, false, false, :rev, 'finished', :at)"
            ),
            {"id": OLD_DECISION["run_id"], "day": date(2026, 11, 22), "rev": "a" * 64, "at": datetime.now(UTC)},
        )
        connection.execute(
            text(
                'INSERT INTO exceptions (library, id, subject, rule, role, granted_by, reason, "from", until, digest)'
                " VALUES ('kntb', 'E-CARD-1234', 'CARD-1234', 'kntb.retention.unused_for_a_year', 'director',"
                " 'Jana Ředitelová', 'studies abroad', :f, :u, :d)"
            ),
            {"f": date(2026, 1, 1), "u": date(2027, 1, 1), "d": b"x"},
        )
        connection.execute(
            text(
                "INSERT INTO decisions (id, run_id, library, as_of, subject_type, subject, rule, action, outcome,"
                " decision, created_at) VALUES (:id, :run, 'kntb', '2026-11-22', 'reader', :subject, :rule,"
                " 'retain', 'retained', :decision, :at)"
            ),
            {
                "id": OLD_DECISION["decision_id"],
                "run": OLD_DECISION["run_id"],
                "subject": OLD_DECISION["subject"],
                "rule": OLD_DECISION["rule"],
                "decision": json.dumps(OLD_DECISION),
                "at": datetime(2026, 11, 22, 1, 0, tzinfo=UTC),
            },
        )

    upgrade(engine, MASTER)
    return engine


def test_upgrading_from_schema_0001_moves_recorded_decisions_into_the_verifiable_log(database_url: str) -> None:
    engine = upgraded_from_0001(database_url)

    with engine.connect() as connection:
        rows = connection.execute(text("SELECT idx, id, kind, entry FROM decision_log")).all()
        pseudonym = connection.execute(text("SELECT pseudonym FROM exceptions")).scalar_one()
    assert [(r.idx, r.id, r.kind) for r in rows] == [(0, OLD_DECISION["decision_id"], "decision")]
    entry = json.loads(rows[0].entry)
    assert entry["exception"] == pseudonym  # the library's exception id (it embeds a card number) is not kept
    assert "CARD-1234" not in rows[0].entry and "US" not in json.dumps(entry["reasons"])
    assert [v.problems for v in verify_log(engine)] == [[]]
    engine.dispose()


def test_upgrading_from_schema_0001_logs_a_recorded_decision_as_exactly_the_entry_of_schema_1(
    database_url: str,
) -> None:
    engine = upgraded_from_0001(database_url)
    with engine.connect() as connection:
        row = connection.execute(text("SELECT entry, leaf_hash FROM decision_log")).one()
        head = connection.execute(text("SELECT library, size, frontier FROM log_heads")).one()
        pseudonym = connection.execute(text("SELECT pseudonym FROM exceptions")).scalar_one()
    # a timestamp column gives a datetime back on PostgreSQL; SQLite gives the text it kept
    time = "2026-11-22T01:00:00+00:00" if engine.dialect.name == "postgresql" else "2026-11-22 01:00:00+00:00"
    engine.dispose()

    assert row.entry == LOGGED.replace("{exception}", pseudonym).replace("{time}", time)
    assert bytes(row.leaf_hash) == hashlib.sha256(b"\x00" + row.entry.encode()).digest()  # RFC 9162 §2.1.1
    assert (head.library, head.size, bytes(head.frontier)) == ("kntb", 1, bytes(row.leaf_hash))


def test_upgrading_from_schema_0001_builds_each_librarys_tree_as_the_log_appends_it(database_url: str) -> None:
    engine = store_at_0001(database_url)
    runs = {"kntb": "00000000-0000-0000-0000-00000000000a", "svkpk": "00000000-0000-0000-0000-00000000000b"}
    order = ["svkpk" if n % 6 == 5 else "kntb" for n in range(20)]  # 17 of kntb (16 and one more), 3 of svkpk
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO libraries (id, name, time_zone) VALUES ('svkpk', 'SVK', 'Europe/Prague')"))
        for library, run in runs.items():
            connection.execute(
                text(
                    'INSERT INTO runs (id, library, as_of, as_of_day, dry_run, "full", policy_revision, status,'
                    " started_at) VALUES (:id, :library, '2026-11-22', :day, false, false, :rev, 'finished', :at)"
                ),
                {"id": run, "library": library, "day": date(2026, 11, 22), "rev": "a" * 64, "at": datetime.now(UTC)},
            )
        for number, library in enumerate(order):
            decision = {key: value for key, value in OLD_DECISION.items() if key != "exception"}
            decision |= {"library": library, "run_id": runs[library], "subject": f"{number:032x}"}
            decision["decision_id"] = f"00000000-0000-0000-0000-{number:012d}"
            connection.execute(
                text(
                    "INSERT INTO decisions (id, run_id, library, as_of, subject_type, subject, rule, action, outcome,"
                    " decision, created_at) VALUES (:id, :run, :library, '2026-11-22', 'reader', :subject, :rule,"
                    " 'retain', 'retained', :decision, :at)"
                ),
                {
                    "id": decision["decision_id"],
                    "run": runs[library],
                    "library": library,
                    "subject": decision["subject"],
                    "rule": decision["rule"],
                    "decision": json.dumps(decision),
                    "at": datetime(2026, 11, 22, 1, number, tzinfo=UTC),
                },
            )

    upgrade(engine)

    with engine.connect() as connection:
        logged = connection.execute(text("SELECT library, idx, id FROM decision_log ORDER BY seq")).all()
        heads = connection.execute(text("SELECT library, size FROM log_heads ORDER BY library")).all()
        subtrees = connection.execute(text("SELECT library, height, position FROM log_subtrees")).all()
    assert [(r.library, r.idx, r.id[-2:]) for r in logged] == [
        (library, order[:n].count(library), f"{n:02d}") for n, library in enumerate(order)
    ]  # in the order recorded, each library's entries numbered from 0
    assert [tuple(r) for r in heads] == [("kntb", 17), ("svkpk", 3)]
    assert [tuple(r) for r in subtrees] == [("kntb", 4, 0)]  # the log caches perfect subtrees of 16 and more
    assert [(v.library, v.problems) for v in verify_log(engine)] == [("kntb", []), ("svkpk", [])]
    engine.dispose()


def test_upgrading_encrypts_an_exceptions_grantor_and_reason_kept_in_clear_before(database_url: str) -> None:
    engine = upgraded_from_0001(database_url)
    with engine.connect() as connection:
        row = connection.execute(text("SELECT library, id, granted_by, reason FROM exceptions")).one()
    engine.dispose()
    assert "Ředitelová".encode() not in bytes(row.granted_by) and b"abroad" not in bytes(row.reason)
    assert MASTER.unwrap(bytes(row.granted_by), b"exception/kntb/E-CARD-1234/granted_by").decode() == "Jana Ředitelová"
    assert MASTER.unwrap(bytes(row.reason), b"exception/kntb/E-CARD-1234/reason").decode() == "studies abroad"


def test_an_upgrade_that_encrypts_stops_without_the_stores_master_key(database_url: str) -> None:
    engine = store_at_0001(database_url)
    with engine.begin() as connection:
        connection.execute(
            text(
                'INSERT INTO exceptions (library, id, subject, rule, role, granted_by, reason, "from", until, digest)'
                " VALUES ('kntb', 'E-1', 'C-1', 'kntb.retention.unused_for_a_year', 'director', 'Jana Ředitelová',"
                " 'studies abroad', :f, :u, :d)"
            ),
            {"f": date(2026, 1, 1), "u": date(2027, 1, 1), "d": b"x"},
        )

    with pytest.raises(RuntimeError, match="master key"):
        upgrade(engine)
    engine.dispose()


def test_upgrading_seals_a_camera_recordings_legal_hold_reason_kept_in_clear_before(database_url: str) -> None:
    engine = store_at_0001(database_url, keyed=True)
    with engine.begin() as connection:
        for cid, hold in ((1, '{"reason": "theft reported by Jan Novák", "until": "2027-03-31"}'), (2, "null")):
            connection.execute(
                text(
                    'INSERT INTO camera_recordings (cid, library, id, pseudonym, camera, start, "end", location,'
                    " legal_hold, digest, purge_failures) VALUES (:cid, 'kntb', :id, :p, 'cam-1', '2026-11-20T10:00',"
                    " '2026-11-20T11:00', '/cctv/x.mp4', :hold, :d, 0)"
                ),
                {"cid": cid, "id": f"REC-{cid}", "p": f"{cid:032x}", "hold": hold, "d": b"x"},
            )
    upgrade(engine, MASTER)
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT id, legal_hold, legal_hold_reason FROM camera_recordings ORDER BY cid")
        ).all()
    engine.dispose()
    held, free = ({**r._mapping, "legal_hold": _json(r.legal_hold)} for r in rows)
    assert held["legal_hold"] == {"until": "2027-03-31"}  # the day decides, and stays in clear
    assert b"Nov" not in bytes(held["legal_hold_reason"])  # the reason may name a person: sealed
    assert MASTER.unwrap(bytes(held["legal_hold_reason"]), b"recording/kntb/REC-1/legal_hold") == (
        "theft reported by Jan Novák".encode()
    )
    assert (free["legal_hold"], free["legal_hold_reason"]) == (None, None)


def _json(value: object) -> object:
    return json.loads(value) if isinstance(value, str) else value


def test_upgrading_to_0006_carries_each_librarys_agreement_into_its_history(database_url: str) -> None:
    engine = connect(database_url)
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0005")
        connection.execute(
            text(
                "INSERT INTO libraries (id, name, time_zone, agreement_signed_on, agreement_reference) VALUES "
                "('kntb', 'KNTB', 'Europe/Prague', :day, 'DPA-OLD-1'), ('svkpk', 'SVK', 'Europe/Prague', NULL, NULL)"
            ),
            {"day": date(2025, 3, 1)},
        )
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0006")
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT library, signed_on, reference, recorded_at FROM agreements")).all()
    engine.dispose()
    # carried over: the current agreement, with no recording time (it was recorded before the history was kept)
    assert [(r.library, str(r.signed_on), r.reference, r.recorded_at) for r in rows] == [
        ("kntb", "2025-03-01", "DPA-OLD-1", None)
    ]
