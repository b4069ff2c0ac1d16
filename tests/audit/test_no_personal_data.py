"""No personal data in the decision log, nor in anything the audit commands print.

The issue: "a test puts known names, addresses, card numbers and birth dates into the store, runs
everything, and finds none of them in the log tables or any export." DESIGN.md, non-negotiables: "No
personal data in the decision log". audit/entries.py: subjects, exceptions and incidents appear by
pseudonym, never by the library system's ids (which may embed a card number); the value of a personal
fact (citizenship) is withheld; an exception's reason and grantor are never copied in.

The population below is made so that nearly every kind of decision is logged about people with
unmistakable data: anonymising (on request, one-time, after the retention period, after an exception
or a legal hold ends), guardian data erased, blocks, proposals from incidents, findings on citizenship
and data inventory, actions held back by exceptions and legal holds, a failed purge and an error.
Every reader's id is a card number, and the ids of exceptions, incidents and loans embed it.

Issuing and revoking tokens, reading an Art. 15 copy and replacing an agreement are logged too (issue 16): the
user's name and an agreement's free-text reference (here holding a person's name) stay out of the log.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from kodex.audit.entries import WITHHELD
from kodex.store.database import connect
from kodex.store.schema import decision_log, log_checkpoints, log_heads, log_keys, log_subtrees, users
from tests.retention.support import clock_at
from tests.support import AGREEMENT, fresh_store, installation_env, ok

FIRST_NIGHT, SECOND_NIGHT = "2026-11-22", "2027-03-15"
LOG_TABLES = (decision_log, log_checkpoints, log_subtrees, log_heads, log_keys)
HALL_RECORDINGS = 280  # svkpk's log passes 256 entries: log_subtrees gets rows to search too
USER_NAME = "Bohumila Přístupová"  # a dpo whose token is issued, then revoked
REFERENCE = "Dodatek č. 2 podepsala Vlasta Smluvní"  # an agreement's reference naming a person
ADMIN_SECRETS = {USER_NAME, REFERENCE}


def reader(library: str, card: str, born: str, personal: dict[str, str], **facts: Any) -> dict[str, Any]:
    return {"type": "reader", "library": library, "id": card, "kind": "person", "birth_date": born,
            "debt": 0, "active_loans": 0, "personal": personal, **facts}  # fmt: skip


def incident(library: str, card: str, number: int, kind: str, at: str) -> dict[str, Any]:
    return {"type": "incident", "library": library, "id": f"I-{card}-{number}", "reader": card, "kind": kind, "at": at}


def exception(library: str, id_: str, subject: str, rule: str, role: str, granted_by: str, reason: str,
              from_: str, until: str) -> dict[str, Any]:  # fmt: skip
    return {"type": "exception", "library": library, "id": id_, "subject": subject, "rule": rule, "role": role,
            "granted_by": granted_by, "reason": reason, "from": from_, "until": until}  # fmt: skip


def loan(library: str, card: str, number: int, **fields: Any) -> dict[str, Any]:
    return {"type": "loan", "library": library, "id": f"L-{card}-{number}", "reader": card,
            "item": f"25900{number:05d}", "borrowed_at": "2026-03-02", **fields}  # fmt: skip


def recording(id_: str, end: str, location: Path, **fields: Any) -> dict[str, Any]:
    return {"type": "camera_recording", "library": "svkpk", "id": id_, "camera": "reading-room",
            "start": end.replace("T11:", "T10:"), "end": end, "location": str(location), **fields}  # fmt: skip


def population(cctv: Path) -> list[dict[str, Any]]:
    """Readers of all three libraries, their loans, incidents and exceptions, and svkpk's camera recordings."""
    stuck = cctv / "stuck.mp4"  # a directory that is not empty: deleting the file fails, the purge is `failed`
    stuck.mkdir(parents=True)
    (stuck / "segment-1").write_bytes(b"video")
    return [
        # -- zdirec ---------------------------------------------------------------------------------
        reader("zdirec", "CARD-77123456", "1961-03-17",  # owes money: blocked; id card and citizenship in excess
               {"first_name": "Jaroslav", "last_name": "Nováček", "address": "Radhošťská 1187/14, Ždírec nad Doubravou",
                "email": "jaroslav.novacek@posta-example.cz", "phone": "+420 777 123 456",
                "id_document": "OP 204518377", "citizenship": "US"},
               renewed_at="2026-02-10", debt=250),
        incident("zdirec", "CARD-77123456", 1, "unauthorised_removal", "2026-09-03"),
        reader("zdirec", "CARD-77123457", "2012-01-20",  # 15 between the two runs: guardian data erased
               {"first_name": "Šárka", "last_name": "Vlčejšková", "address": "U Pily 412, Ždírec nad Doubravou"},
               renewed_at="2026-09-01",
               guardian={"first_name": "Bořivoj", "last_name": "Pospíchal", "address": "Na Výsluní 88, Chotěboř",
                         "id_document": "OP 318844556", "phone": "+420 603 998 877"}),
        reader("zdirec", "CARD-77123458", "1948-06-09",  # retention over, held by an exception until January
               {"first_name": "Květoslava", "last_name": "Hrabalová", "address": "Družstevní 1021, Ždírec nad Doubravou",
                "email": "kveta.hrabalova@posta-example.cz"},
               renewed_at="2019-05-01"),
        exception("zdirec", "E-CARD-77123458", "CARD-77123458", "zdirec.retention.five_years_after_registration",
                  "director", "Mgr. Radoslava Třešňáková",
                  "Paní Květoslava Hrabalová dokončuje kroniku obce; její údaje ponechat do konce ledna.",
                  "2026-10-01", "2027-01-31"),
        reader("zdirec", "CARD-77123459", "1975-11-02",  # asked for the loan history to be erased
               {"first_name": "Ctibor", "last_name": "Zahrádka", "address": "Sportovní 617, Ždírec nad Doubravou"},
               renewed_at="2026-01-05", history_erasure_requested_at="2026-11-01"),
        loan("zdirec", "CARD-77123459", 1, returned_at="2026-03-30"),
        loan("zdirec", "CARD-77123459", 2, returned_at="2026-04-28"),
        reader("zdirec", "CARD-77123460", "1983-10-29",  # asked to be erased
               {"first_name": "Ludmila", "last_name": "Pažoutová", "address": "Lipová 275, Ždírec nad Doubravou",
                "phone": "+420 732 554 210"},
               renewed_at="2025-03-01", erasure_requested_at="2026-11-10"),
        reader("zdirec", "CARD-77123461", "1990-04-26",  # a registration end no deadline can be added to: an error
               {"first_name": "Evžen", "last_name": "Kroupa", "address": "Nádražní 1290, Ždírec nad Doubravou"},
               valid_until="9999-06-30"),
        reader("zdirec", "CARD-77123462", "2016-04-23",  # a child without a guardian's data
               {"first_name": "Matyáš", "last_name": "Drahokoupil", "address": "Školní 530, Ždírec nad Doubravou"},
               renewed_at="2026-06-01"),
        # -- kntb -----------------------------------------------------------------------------------
        reader("kntb", "CARD-88234567", "1979-08-25",  # a US citizen without a residence permit or contact address
               {"first_name": "Theodora", "last_name": "Quackenbushová", "address": "Lorencova 3421, Zlín",
                "id_document": "PAS 559812346", "citizenship": "US", "email": "t.quackenbush@mail-example.com"},
               renewed_at="2026-04-01", last_activity_at="2026-10-01"),
        reader("kntb", "CARD-88234568", "1969-12-11",  # reminded loans, lost cards, uncollected reservations
               {"first_name": "Bartoloměj", "last_name": "Šťastný", "address": "Zarámí 4463, Zlín",
                "contact_address": "Třída Tomáše Bati 3650, Zlín", "id_document": "OP 112093847",
                "citizenship": "US", "residence_permit": "povolení k trvalému pobytu MV-55501234",
                "employer": "Krajská nemocnice T. Bati", "department": "oddělení ORL"},
               renewed_at="2026-03-01", last_activity_at="2026-11-02", active_loans=2, reminded_loans=2),
        loan("kntb", "CARD-88234568", 1, due_at="2026-04-01"),
        loan("kntb", "CARD-88234568", 2, due_at="2026-04-01"),
        incident("kntb", "CARD-88234568", 1, "card_lost", "2026-02-03"),
        incident("kntb", "CARD-88234568", 2, "card_lost", "2026-07-14"),
        incident("kntb", "CARD-88234568", 3, "reservation_not_collected", "2026-05-05"),
        incident("kntb", "CARD-88234568", 4, "reservation_not_collected", "2026-08-19"),
        exception("kntb", "E-CARD-88234568", "CARD-88234568", "kntb.reservations.repeatedly_not_collected",
                  "authorised_employee", "Bc. Hedvika Mráčková",
                  "Pan Šťastný je po operaci; rezervace vyzvedává manželka Anežka Šťastná.",
                  "2026-09-01", "2027-08-31"),
        reader("kntb", "CARD-88234569", "1957-02-28",  # a one-time registration
               {"first_name": "Vendelín", "last_name": "Kopřiva", "address": "Podlesí V 5302, Zlín",
                "id_document": "OP 330475566"},
               renewed_at="2026-10-10", one_time=True),
        reader("kntb", "CARD-88234570", "1988-05-19",  # unused for a year, held by an exception until February
               {"first_name": "Gabriela", "last_name": "Šindelářová", "address": "Kvítková 4317, Zlín",
                "id_document": "OP 441586677"},
               renewed_at="2025-05-01", last_activity_at="2025-06-01"),
        exception("kntb", "E-CARD-88234570", "CARD-88234570", "kntb.retention.unused_for_a_year", "director",
                  "MUDr. Oldřich Kvasnička", "Paní Šindelářová je na rodičovské dovolené, vrátí se v únoru.",
                  "2026-06-01", "2027-02-28"),
        reader("kntb", "CARD-88234571", "2012-08-30",  # registered at 14
               {"first_name": "Kryštof", "last_name": "Habrman", "address": "Díly IV 6811, Zlín",
                "id_document": "OP 552697788"},
               renewed_at="2026-09-15"),
        reader("kntb", "CARD-88234572", "1966-01-13",  # asked to be erased
               {"first_name": "Zdeňka", "last_name": "Lopatová", "address": "Benešovo nábřeží 2512, Zlín",
                "id_document": "OP 663708899"},
               renewed_at="2026-01-20", erasure_requested_at="2026-11-05"),
        # -- svkpk ----------------------------------------------------------------------------------
        reader("svkpk", "CARD-99345678", "1972-09-21",  # retention over, under a legal hold until January
               {"first_name": "Radomír", "last_name": "Vlčejšek", "address": "Klatovská třída 2109/57, Plzeň",
                "id_document": "OP 417702958", "email": "radomir.vlcejsek@posta-example.cz",
                "phone": "+420 606 414 141"},
               renewed_at="2022-01-10",
               legal_hold={"reason": "Předáno Policii ČR, č. j. KRPP-45871/TČ-2026: Radomír Vlčejšek podezřelý "
                                     "z krádeže rukopisů", "until": "2027-01-31"}),
        reader("svkpk", "CARD-99345679", "2011-12-05",  # 15 between the two runs: guardian data erased
               {"first_name": "Eliška", "last_name": "Brabcová", "address": "Na Roudné 77, Plzeň",
                "id_document": "OP 700266554"},
               renewed_at="2026-06-01",
               guardian={"first_name": "Libuše", "last_name": "Brabcová", "address": "Na Roudné 77, Plzeň",
                         "id_document": "OP 600155443"}),
        reader("svkpk", "CARD-99345680", "2016-02-14",  # registered at 10, without a guardian's data
               {"first_name": "Vojtěch", "last_name": "Kadeřábek", "address": "Lobezská 1146/33, Plzeň",
                "id_document": "OP 811377665"},
               renewed_at="2026-05-01"),
        reader("svkpk", "CARD-99345681", "1994-03-08",  # a US citizen, an employer kept, ILL loan reminded, expelled
               {"first_name": "Xenie", "last_name": "Ouředníková", "address": "Americká třída 2381/41, Plzeň",
                "id_document": "PAS 922488776", "citizenship": "US", "employer": "Plzeňský Prazdroj, a. s."},
               renewed_at="2026-02-01", active_loans=1, reminded_ill_loans=1),
        loan("svkpk", "CARD-99345681", 1, due_at="2026-04-01", ill=True),
        incident("svkpk", "CARD-99345681", 1, "expelled_from_premises", "2026-04-10"),
        incident("svkpk", "CARD-99345681", 2, "expelled_from_premises", "2026-10-12"),
        reader("svkpk", "CARD-99345682", "1985-07-31",  # cancelled the registration
               {"first_name": "Radek", "last_name": "Čtvrtníček", "address": "Slovanská alej 1970/28, Plzeň",
                "id_document": "OP 133599887"},
               renewed_at="2025-12-01", erasure_requested_at="2026-11-12"),
        reader("svkpk", "CARD-99345683", "1958-10-04",  # a registration end no deadline can be added to: an error
               {"first_name": "Blanka", "last_name": "Hřebíčková", "address": "Pod Záhorskem 1399/5, Plzeň",
                "id_document": "OP 244600998"},
               valid_until="9999-06-30"),
        recording("cam-held", "2026-11-10T11:00:00+01:00", cctv / "held.mp4",
                  legal_hold={"reason": "Záznam krádeže, pachatel Radomír Vlčejšek; předáno Policii ČR KRPP-99871",
                              "until": "2027-01-31"}),
        recording("cam-stuck", "2026-11-08T11:00:00+01:00", stuck),
        *[recording(f"cam-hall-{n:04d}", f"2026-11-0{1 + n % 7}T11:00:00+01:00", cctv / f"hall-{n}.mp4")
          for n in range(HALL_RECORDINGS)],
    ]  # fmt: skip


def personal_values(records: list[dict[str, Any]]) -> set[str]:
    """Everything in the records that names or identifies a person, or is free text about one (and the names
    the administrative commands were given)."""
    values: set[str] = set(ADMIN_SECRETS)
    for record in records:
        kind = record["type"]
        if kind == "reader":
            values |= {record["id"], record["birth_date"]}
            values |= set(record["personal"].values()) | set(record.get("guardian", {}).values())
            if record.get("legal_hold"):
                values.add(record["legal_hold"]["reason"])
        elif kind in {"incident", "loan"}:
            values |= {record["id"], record["reader"]}
        elif kind == "exception":
            values |= {record["id"], record["granted_by"], record["reason"]}
        elif record.get("legal_hold"):
            values.add(record["legal_hold"]["reason"])
    return values


def needles(value: str) -> list[str]:
    """How a value would show if it leaked: as itself, or JSON-escaped; a short value only as a whole JSON string."""
    if len(value) < 6:  # "US" alone would be found inside base64 and words; as "US" it is a leaked value
        return [json.dumps(value, ensure_ascii=False), json.dumps(value)]
    return [value, json.dumps(value)[1:-1]]


def leaks(text: str, secrets: set[str]) -> set[str]:
    return {value for value in secrets if any(needle in text for needle in needles(value))}


def as_text(value: Any) -> str:
    """A column value as text to search: bytes decoded, JSON dumped, a string also as a JSON string."""
    if isinstance(value, memoryview):
        value = bytes(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, str):
        return value + "\n" + json.dumps(value, ensure_ascii=False)
    return str(value)


# -- everything run once -------------------------------------------------------------------------------


class Everything:
    """The store after every command has run over the population, and what the audit commands printed."""

    def __init__(self, engine: Engine, records: list[dict[str, Any]], printed: dict[str, str]) -> None:
        self.engine, self.records, self.printed = engine, records, printed
        with engine.connect() as connection:
            self.entries = [json.loads(text) for text in connection.execute(select(decision_log.c.entry)).scalars()]

    def decisions(self) -> list[dict[str, Any]]:
        return [entry for entry in self.entries if entry["kind"] == "decision"]


@pytest.fixture(scope="module")
def everything(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Everything]:
    home = tmp_path_factory.mktemp("personal")
    records = population(home / "cctv" / "svkpk")  # SVK PK's recordings folder (KODEX_RECORDINGS_ROOT below)
    source = home / "records.jsonl"
    source.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    with fresh_store(home) as url, pytest.MonkeyPatch.context() as patch:
        installation_env(home, url, patch)
        clock_at(patch, SECOND_NIGHT)
        patch.setenv("KODEX_RECORDINGS_ROOT", str(home / "cctv"))
        ok("init")
        ok(*AGREEMENT)
        ok("import", str(source))
        ok("run", "--as-of", FIRST_NIGHT, "--dry-run", "--wait", "60")  # the officer's plan: not searched
        printed = {
            "run --format jsonl": ok("run", "--as-of", FIRST_NIGHT, "--format", "jsonl", "--wait", "60").output,
            "run (a later night)": ok("run", "--as-of", SECOND_NIGHT, "--wait", "60").output,
            "audit checkpoint": ok("audit", "checkpoint").output,
            "audit export": ok("audit", "export").output,
            "decisions --format jsonl --all": ok("decisions", "--format", "jsonl", "--all").output,
            "decisions (table)": ok("decisions", "--all").output,
            "audit verify": ok("audit", "verify").output,
            "audit public-key --all": ok("audit", "public-key", "--all").output,
        }
        token_holder = ok("users", "add", "--role", "dpo", "--name", USER_NAME, "--library", "zdirec")
        assert token_holder.stdout.startswith("kodex_")
        engine = connect(url)
        with engine.connect() as connection:
            (dpo,) = connection.execute(select(users.c.id).where(users.c.role == "dpo")).scalars()
        ok("users", "revoke", dpo, "--library", "zdirec")
        ok("export", "--library", "zdirec", "--reader", "CARD-77123456")  # the copy itself: not searched
        ok("libraries", "agreement", "zdirec", "--signed", "2026-07-01", "--reference", REFERENCE)
        printed["audit checkpoint --format note"] = ok("audit", "checkpoint", "--format", "note").output
        printed["decisions --kind user_added"] = ok("decisions", "--kind", "user_added", "--all").output
        found = Everything(engine, records, printed)
        for entry in proved(found.entries):
            printed[f"audit prove {entry['id']}"] = ok("audit", "prove", entry["id"]).output
        yield found
        engine.dispose()


def proved(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Entries worth a proof: about an exception, incidents, a citizenship, a legal hold, a failure, an error."""
    wanted: list[Callable[[dict[str, Any]], bool]] = [
        lambda e: e["kind"] == "exception_granted",
        lambda e: e["exception"] is not None and e["kind"] == "decision",
        lambda e: bool(e["details"].get("incidents")),
        lambda e: any("citizenship" in r["values"] for r in e["reasons"]),
        lambda e: "legal_hold" in e["details"],
        lambda e: e["outcome"] == "failed",
        lambda e: e["outcome"] == "error",
    ]
    return [next(e for e in entries if matches(e)) for matches in wanted]


# -- the tests -------------------------------------------------------------------------------------


def test_the_records_hold_the_personal_values_and_the_log_holds_decisions_about_them(
    everything: Everything,
) -> None:
    secrets = personal_values(everything.records)
    source = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in everything.records)
    assert leaks(source, secrets) == secrets - ADMIN_SECRETS  # every record value searched for was imported
    assert {"US", "CARD-77123456", "E-CARD-77123458", "I-CARD-88234568-3", "1961-03-17",
            "MUDr. Oldřich Kvasnička", "Radhošťská 1187/14, Ždírec nad Doubravou"} <= secrets  # fmt: skip

    decisions = everything.decisions()
    outcomes = {d["outcome"] for d in decisions}
    assert outcomes == {"applied", "reported", "proposed", "retained", "failed", "error"}
    actions = {d["action"] for d in decisions} | {d["details"].get("blocked_action") for d in decisions}
    assert {"anonymise", "erase_guardian_data", "erase_loan_history", "block_services", "registration_expired",
            "purge", "propose_exclusion", "revoke_reservations", "reject_registration", "require_guardian",
            "missing_mandatory_data", "flag_excess_data"} <= actions  # fmt: skip
    # three exceptions (a recording can no longer have one: it is kept longer only under a legal hold)
    assert len([e for e in everything.entries if e["kind"] == "exception_granted"]) == 3
    assert len([d for d in decisions if d["exception"] is not None]) == 3  # each exception held something back
    assert len([d for d in decisions if d["details"].get("incidents")]) == 4
    assert [d for d in decisions if "legal_hold" in d["details"]]
    citizenship = [r["values"]["citizenship"] for d in decisions for r in d["reasons"] if "citizenship" in r["values"]]
    assert citizenship and set(citizenship) == {WITHHELD}
    anonymised_later = [d for d in decisions if d["action"] == "anonymise" and d["as_of"] == SECOND_NIGHT]
    assert len(anonymised_later) == 3  # once the two exceptions and the legal hold ended
    kinds = {e["kind"] for e in everything.entries}
    assert {"user_added", "user_revoked", "access_copy_read", "agreement_recorded"} <= kinds


def test_the_search_finds_a_personal_value_wherever_it_would_be_written() -> None:
    secrets = {"US", "E-CARD-77123458", "Květoslava Hrabalová"}
    assert leaks(json.dumps({"values": {"citizenship": "US"}}, separators=(",", ":")), secrets) == {"US"}
    assert leaks(as_text('{"exception":"E-CARD-77123458"}'), secrets) == {"E-CARD-77123458"}
    assert leaks(as_text(json.dumps({"reason": "Květoslava Hrabalová"})), secrets) == {"Květoslava Hrabalová"}
    assert leaks(as_text("Květoslava Hrabalová".encode()), secrets) == {"Květoslava Hrabalová"}
    assert leaks(as_text("US"), secrets) == {"US"}  # a column holding nothing else
    assert leaks("signed root 5USg/Kb…, key 4a2fUS09", secrets) == set()  # "US" inside base64 is no leak


@pytest.mark.parametrize("table", LOG_TABLES, ids=[t.name for t in LOG_TABLES])
def test_no_personal_value_is_in_any_column_of_the_log_table(everything: Everything, table: Any) -> None:
    secrets = personal_values(everything.records)
    with everything.engine.connect() as connection:
        found = list(connection.execute(select(table)))
    assert found  # the table was written to, so searching it means something

    leaked = {
        (str(column), value)
        for row in found
        for column, cell in row._mapping.items()
        for value in leaks(as_text(cell), secrets)
    }

    assert leaked == set()


def test_no_personal_value_is_in_what_the_audit_commands_print(everything: Everything) -> None:
    secrets = personal_values(everything.records)
    assert len([name for name in everything.printed if name.startswith("audit prove")]) == 7

    leaked = {(command, value) for command, text in everything.printed.items() for value in leaks(text, secrets)}

    assert leaked == set()
