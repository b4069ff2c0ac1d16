"""A deterministic, seeded synthetic population of the three libraries (record contract).

    python -m bench.synthetic --readers 100000 --seed 7 > readers.jsonl

Ages include minors, registrations span eight years, some readers owe money or
hold loans, ask for erasure or are under a legal hold; about one reader in
twenty has 1–4 incidents (lost cards, damaged documents, expulsions…) over the
last three years; SVK PK has hourly camera recordings. Names and addresses are
invented. Incidents are drawn from their own seeded stream, so the readers,
exceptions and recordings of a seed are the same with or without them.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from typing import Any

from kodex.rules.policy import INCIDENT_KINDS

__all__ = ["population"]

LIBRARIES = ("zdirec", "kntb", "svkpk")
FIRST = ("Jan", "Petr", "Eva", "Jana", "Tomáš", "Lucie", "Martin", "Anna", "Jakub", "Tereza", "Oleh", "Marie")
LAST = ("Novák", "Svobodová", "Dvořák", "Černá", "Procházka", "Kučerová", "Veselý", "Horáková", "Kovalenko", "Malá")
STREETS = ("Brodská", "Americká", "Havlíčkova", "Smetanova", "Nádražní", "Husova")
TOWNS = ("Ždírec nad Doubravou", "Zlín", "Plzeň", "Chotěboř", "Otrokovice")
CITIZENSHIP = ("CZ",) * 17 + ("SK", "DE", "UA", "US")


def population(
    readers: int,
    seed: int,
    as_of: date = date(2026, 11, 22),
    cameras: int = 0,
    *,
    incident_share: float = 0.05,
    incidents_per_reader: tuple[int, int] = (1, 4),
) -> Iterator[dict[str, Any]]:
    """`readers` readers spread over the three libraries, then `cameras` days of hourly recordings at SVK PK.

    Each reader is followed by its exception (one reader in fifty) and then, for
    `incident_share` of the readers, by its incidents (between the two bounds of
    `incidents_per_reader`, oldest first).
    """
    rng = random.Random(seed)
    incident_rng = random.Random(f"{seed}/incidents")  # its own stream: the other records of a seed do not change
    for number in range(readers):
        reader = _reader(rng, number, as_of)
        yield reader
        if number % 50 == 7:
            yield _exception(reader, as_of)
        if incident_rng.random() < incident_share:
            yield from _incidents(incident_rng, reader, as_of, incidents_per_reader)
    start = datetime.combine(as_of - timedelta(days=cameras), datetime.min.time(), timezone(timedelta(hours=1)))
    for hour in range(cameras * 24):
        begin = start + timedelta(hours=hour)
        yield {
            "type": "camera_recording",
            "library": "svkpk",
            "id": f"entrance-{begin:%Y%m%dT%H}",
            "camera": "entrance",
            "start": begin.isoformat(),
            "end": (begin + timedelta(hours=1)).isoformat(),
            "location": f"/var/cctv/svkpk/entrance/{begin:%Y%m%dT%H}.mp4",  # in SVK PK's default recordings folder
            "legal_hold": {"reason": "handed to the police", "until": None} if rng.random() < 0.01 else None,
        }


def _category(library: str, drawn: str, personal: dict[str, Any]) -> str:
    """The reader's category in the library's own list (policies.yaml): KNTB's are internal (the hospital's staff,
    KNTB 4.2) and external; the other libraries name none, so the draw stands (drawn either way: a seed's other
    records stay the same)."""
    if library == "kntb":
        return "internal" if personal.get("employer") else "external"
    return drawn


def _reader(rng: random.Random, number: int, as_of: date) -> dict[str, Any]:
    library = LIBRARIES[number % 3]
    age = rng.choice((rng.randint(6, 17), rng.randint(18, 90), rng.randint(18, 90), rng.randint(18, 90)))
    birth = as_of - timedelta(days=age * 365 + rng.randint(0, 364))
    renewed = as_of - timedelta(days=rng.randint(0, 8 * 365))
    youngest = 6 if rng.random() < 0.03 else 12
    if renewed < birth + timedelta(days=365 * youngest):
        renewed = birth + timedelta(days=365 * youngest + rng.randint(0, 300))
    renewed = min(renewed, as_of)
    debt = rng.choice((0, 0, 0, 0, 0, 0, 0, 0, 20, 150))
    loans = rng.choice((0, 0, 0, 0, 1, 2, 3))
    minor = (as_of - birth).days < 15 * 365
    citizenship = rng.choice(CITIZENSHIP)
    personal: dict[str, Any] = {
        "first_name": rng.choice(FIRST),
        "last_name": rng.choice(LAST),
        "address": f"{rng.choice(STREETS)} {rng.randint(1, 999)}, {rng.choice(TOWNS)}",
        "email": f"reader{number}@example.org" if rng.random() < 0.7 else None,
        "phone": f"+420 6{rng.randint(10000000, 99999999)}" if rng.random() < 0.5 else None,
        "id_document": f"OP {rng.randint(100000000, 999999999)}"
        if rng.random() < (0.1 if library == "zdirec" else 0.95)
        else None,
    }
    if library == "kntb":
        personal["citizenship"] = citizenship
        if citizenship not in ("CZ", "SK", "DE") and rng.random() < 0.6:
            personal["residence_permit"] = "dlouhodobý pobyt"
    if library == "svkpk" and citizenship != "CZ":
        personal["citizenship"] = citizenship
        personal["id_issuing_state"] = citizenship if rng.random() < 0.8 else None
    if rng.random() < 0.03:
        personal["employer"] = "Krajská nemocnice"
    record: dict[str, Any] = {
        "type": "reader",
        "library": library,
        "id": f"{library[:2].upper()}-{number:07d}",
        "kind": "person" if rng.random() < 0.98 else "legal_entity",
        "category": _category(library, "child" if minor else rng.choice(("adult", "student", "senior")), personal),
        "birth_date": birth.isoformat(),
        "renewed_at": renewed.isoformat(),
        "last_activity_at": min(as_of, renewed + timedelta(days=rng.randint(0, 700))).isoformat(),
        "one_time": library == "kntb" and rng.random() < 0.05,
        "debt": debt,
        "active_loans": loans,
        "reminded_loans": rng.choice((0,) * 9 + (1,)) if loans else 0,
        "reminded_ill_loans": rng.choice((0,) * 19 + (1,)) if loans else 0,
        "obligations_settled_at": (renewed + timedelta(days=rng.randint(30, 900))).isoformat()
        if rng.random() < 0.2 and not debt and renewed + timedelta(days=900) < as_of
        else None,
        "erasure_requested_at": (as_of - timedelta(days=rng.randint(1, 40))).isoformat()
        if rng.random() < 0.02
        else None,
        "history_erasure_requested_at": (as_of - timedelta(days=rng.randint(1, 40))).isoformat()
        if rng.random() < 0.01
        else None,
        "legal_hold": {"reason": "handed to the police", "until": None} if rng.random() < 0.005 else None,
        "personal": {k: v for k, v in personal.items() if v is not None},
    }
    if (minor or (age < 18 and rng.random() < 0.5)) and rng.random() < 0.8:
        record["guardian"] = {
            "first_name": rng.choice(FIRST),
            "last_name": rng.choice(LAST),
            "address": personal["address"],
        }
    return record


RETENTION_RULES = {
    "zdirec": "zdirec.retention.five_years_after_registration",
    "kntb": "kntb.retention.unused_for_a_year",
    "svkpk": "svkpk.retention.after_settlement",
}


def _exception(reader: dict[str, Any], as_of: date) -> dict[str, Any]:
    """A director's exception keeping the reader's data for a while (e.g. a pending court case)."""
    return {
        "type": "exception",
        "library": reader["library"],
        "id": f"E-{reader['id']}",
        "subject": reader["id"],
        "rule": RETENTION_RULES[reader["library"]],
        "role": "director",
        "granted_by": "ředitel",
        "reason": "pending dispute",
        "from": (as_of - timedelta(days=30)).isoformat(),
        "until": (as_of + timedelta(days=150)).isoformat(),
    }


def _incidents(
    rng: random.Random, reader: dict[str, Any], as_of: date, count: tuple[int, int]
) -> Iterator[dict[str, Any]]:
    """A few incidents of any kind over the three years before `as_of`, oldest first."""
    days = sorted(as_of - timedelta(days=rng.randint(0, 3 * 365)) for _ in range(rng.randint(*count)))
    for n, day in enumerate(days, start=1):
        yield {
            "type": "incident",
            "library": reader["library"],
            "id": f"I-{reader['id']}-{n}",
            "reader": reader["id"],
            "kind": rng.choice(INCIDENT_KINDS),
            "at": day.isoformat(),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readers", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--as-of", type=date.fromisoformat, default=date(2026, 11, 22))
    parser.add_argument("--camera-days", type=int, default=0, help="days of hourly SVK PK entrance recordings")
    parser.add_argument("--incident-share", type=float, default=0.05, help="share of readers with incidents (0–1)")
    args = parser.parse_args()
    records = population(args.readers, args.seed, args.as_of, args.camera_days, incident_share=args.incident_share)
    for record in records:
        sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
