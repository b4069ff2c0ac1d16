"""Facts a rule may name, derived from one record at `as_of`.

Dates are read in the library's time zone; a date without time means 00:00
there (the record contract, rules.records). Unknown input stays unknown (None), and an
unknown fact never makes a rule fire. Raw identity (names, birth date, card
number) is not a fact: rules see age, not the birth date.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any, overload
from zoneinfo import ZoneInfo

from kodex.rules.periods import age_on
from kodex.rules.records import CameraRecording, LegalHold, Reader

__all__ = [
    "CAMERA_FACTS",
    "PERSONAL_FACTS",
    "READER_FACTS",
    "camera_facts",
    "held_keys",
    "local_day",
    "local_time",
    "reader_facts",
]

READER_FACTS: Mapping[str, str] = {
    "as_of": "the day of the decision",
    "kind": "kind of reader (person or legal_entity)",
    "category": "reader category",
    "one_time": "one-time registration",
    "age": "age in completed years",
    "age_at_registration": "age on the day of registration or renewal",
    "renewed_at": "registered or last renewed on",
    "valid_until": "registration valid until",
    "valid_until_derived": "registration end derived by the regulation (not given in the record)",
    "last_activity_at": "last used the library's services on",
    "obligations_settled_at": "obligations settled on",
    "erasure_requested": "the reader asked for erasure",
    "history_erasure_requested": "the reader asked for erasure of the loan history",
    "debt": "debt owed to the library",
    "active_loans": "loans not yet returned",
    "reminded_loans": "loans reminded and not yet returned",
    "reminded_ill_loans": "interlibrary loans reminded and not yet returned",
    "obligations": "has obligations (debt or loans)",
    "has_guardian": "guardian's data recorded",
    "legal_hold": "data under an active legal hold",
    "citizenship": "citizenship (state code)",
    "has_residence_permit": "residence permit recorded",
    "missing_mandatory": "mandatory data missing",
    "excess_data": "data held beyond the regulation's inventory",
}

# Facts whose value is itself personal data: a decision log entry gives the condition and whether it held,
# never the value (age, dates and counts are what statistics keep after anonymising).
PERSONAL_FACTS = frozenset({"citizenship"})

CAMERA_FACTS: Mapping[str, str] = {
    "as_of": "the day of the decision",
    "as_of_time": "the moment of the decision",
    "camera": "camera",
    "start": "recording started",
    "end": "recording ended",
    "legal_hold": "recording under an active legal hold",
}


_EMPTY: Mapping[str, str | None] = {}


@overload
def local_day(value: date | datetime, zone: ZoneInfo) -> date: ...
@overload
def local_day(value: date | datetime | None, zone: ZoneInfo) -> date | None: ...
def local_day(value: date | datetime | None, zone: ZoneInfo) -> date | None:
    """The day `value` falls on in `zone` (a moment without an offset is taken as local; a day is itself)."""
    if isinstance(value, datetime):
        return (value.astimezone(zone) if value.tzinfo else value).date()
    return value


def local_time(value: date | datetime, zone: ZoneInfo) -> datetime:
    if not isinstance(value, datetime):
        return datetime.combine(value, time(), zone)
    return value.astimezone(zone) if value.tzinfo else value.replace(tzinfo=zone)


def reader_facts(reader: Reader, as_of: date, zone: ZoneInfo) -> dict[str, Any]:
    """Facts about `reader` on `as_of`; inventory facts and a derived registration end are added by the caller."""
    renewed_at = local_day(reader.renewed_at, zone)
    birth = reader.birth_date
    personal = reader.personal or _EMPTY
    return {
        "as_of": as_of,
        "kind": reader.kind,
        "category": reader.category,
        "one_time": reader.one_time,
        "age": None if birth is None else age_on(birth, as_of),
        "age_at_registration": None if birth is None or renewed_at is None else age_on(birth, renewed_at),
        "renewed_at": renewed_at,
        "valid_until": local_day(reader.valid_until, zone),
        "valid_until_derived": False,
        "last_activity_at": local_day(reader.last_activity_at, zone),
        "obligations_settled_at": local_day(reader.obligations_settled_at, zone),
        "erasure_requested": _requested(reader.erasure_requested_at, as_of, zone),
        "history_erasure_requested": _requested(reader.history_erasure_requested_at, as_of, zone),
        "debt": reader.debt,
        "active_loans": reader.active_loans,
        "reminded_loans": reader.reminded_loans,
        "reminded_ill_loans": reader.reminded_ill_loans,
        "obligations": _obligations(reader.debt, reader.active_loans),
        "has_guardian": any(reader.guardian.values()) if reader.guardian else False,
        "legal_hold": _hold_active(reader.legal_hold, as_of),
        "citizenship": personal.get("citizenship") or None,
        "has_residence_permit": bool(personal.get("residence_permit")),
    }


def camera_facts(recording: CameraRecording, as_of: datetime, zone: ZoneInfo) -> dict[str, Any]:
    return {
        "as_of": as_of.date(),
        "as_of_time": as_of,
        "camera": recording.camera,
        "start": local_time(recording.start, zone),
        "end": local_time(recording.end, zone),
        "legal_hold": _hold_active(recording.legal_hold, as_of.date()),
    }


def held_keys(reader: Reader) -> set[str]:
    """Inventory keys the record holds a value for (personal data and birth date)."""
    keys: set[str] = {key for key, value in (reader.personal or {}).items() if value}
    if reader.birth_date is not None:
        keys.add("birth_date")
    return keys


def _requested(at: date | datetime | None, as_of: date, zone: ZoneInfo) -> bool:
    day = local_day(at, zone)
    return day is not None and day <= as_of


def _obligations(debt: Decimal | None, loans: int | None) -> bool | None:
    if (debt is not None and debt > 0) or (loans is not None and loans > 0):
        return True
    if debt is None or loans is None:
        return None
    return False


def _hold_active(hold: LegalHold | None, as_of: date) -> bool:
    return hold is not None and (hold.until is None or as_of <= hold.until)
