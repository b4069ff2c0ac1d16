"""The values kodex can keep and compute with, checked where they come in (records, API bodies and parameters).

Python's calendar ends at the years 1 and 9999. A record's day may be anything in it (library systems write
9999-12-31 for "never"), but a moment must lie a day inside it, so that converting it to the library's time zone
stays in the calendar. A day kodex is asked to decide for, count a deadline from or keep a hold or exception
until (API bodies and parameters) lies between the years 1000 and 8999: policies add periods of years to it.
Such a day is written as a day (`2026-11-22`) or a moment with its offset (`2026-11-22T02:00:00+01:00`): not a
number (which pydantic would read as seconds since 1970), and not a moment without an offset, which could be any of
a day's hours depending on where it is read. The OpenAPI schema states the same: RFC 3339 formats, and a pattern
for the years. Text must not hold the NUL character, which PostgreSQL cannot store (SQLite could, so both stores
refuse it alike). Messages never repeat the value they refuse.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BeforeValidator, TypeAdapter, ValidationError, WithJsonSchema

__all__ = [
    "FIRST_DAY", "LAST_DAY", "NAIVE", "CalendarDate", "CalendarDay", "CalendarMoment", "NoNul", "RecordDay", "aware",
    "check_text", "within_calendar",
]  # fmt: skip

FIRST_DAY, LAST_DAY = date(1000, 1, 1), date(8999, 12, 31)
_D = TypeVar("_D", bound=date)


def within_calendar(value: _D) -> _D:
    """A day or moment kodex decides for or counts from: between FIRST_DAY and LAST_DAY."""
    day = value.date() if isinstance(value, datetime) else value
    if not FIRST_DAY <= day <= LAST_DAY:
        raise ValueError(f"must lie between the years {FIRST_DAY.year} and {LAST_DAY.year}")
    return value


def aware(value: _D) -> _D:
    """A moment with its offset; a day as it is."""
    if isinstance(value, datetime) and value.tzinfo is None:
        raise ValueError(NAIVE)
    return value


NAIVE = "a moment needs its UTC offset (2026-11-22T02:00:00+01:00); or give a day (2026-11-22)"


def _written(moment: bool, day: bool) -> Any:
    """Read text written as a day or a moment (no number, no word) before pydantic reads it its own way.

    A moment at midnight is kept a moment (pydantic would read `2026-11-22T00:00:00Z` as the day).
    """
    what = " or ".join(
        name for name, wanted in (("a day (YYYY-MM-DD)", day), ("a moment with offset", moment)) if wanted
    )

    def read(value: Any) -> Any:
        if isinstance(value, date):
            return value
        try:
            if isinstance(value, str) and day and _DAY.fullmatch(value):
                return date.fromisoformat(value)
            if isinstance(value, str) and moment and _MOMENT.fullmatch(value):
                return _MOMENTS.validate_python(value)
        except (ValueError, ValidationError):
            pass
        raise ValueError(f"write {what}")

    return BeforeValidator(read)


_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
_MOMENT = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:?\d{2})?")
_MOMENTS = TypeAdapter(datetime)
# The years FIRST_DAY to LAST_DAY, as the schema states them (a pattern beside the RFC 3339 format).
_YEARS = r"^[1-8][0-9]{3}-"
_DAY_SCHEMA = {"type": "string", "format": "date", "pattern": _YEARS}
_MOMENT_SCHEMA = {"type": "string", "format": "date-time", "pattern": _YEARS}


def _convertible(value: _D) -> _D:
    """A record's day as it is; a record's moment a day inside the calendar (any time zone can take it)."""
    if isinstance(value, datetime) and not date.min + timedelta(days=1) <= value.date() <= date.max - timedelta(days=1):
        raise ValueError("must lie between the years 1 and 9999, a day inside either end")
    return value


def check_text(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not hold the NUL character (U+0000)")
    return value


CalendarDate = Annotated[
    date, _written(moment=False, day=True), AfterValidator(within_calendar), WithJsonSchema(_DAY_SCHEMA)
]
CalendarMoment = Annotated[
    datetime, _written(moment=True, day=False), AfterValidator(aware), AfterValidator(within_calendar),
    WithJsonSchema(_MOMENT_SCHEMA),
]  # fmt: skip
CalendarDay = Annotated[  # a day, or a moment of one
    date | datetime, _written(moment=True, day=True), AfterValidator(aware), AfterValidator(within_calendar),
    WithJsonSchema({"anyOf": [_DAY_SCHEMA, _MOMENT_SCHEMA]}),
]  # fmt: skip
RecordDay = Annotated[date | datetime, AfterValidator(_convertible)]  # a record's day or moment
NoNul = AfterValidator(check_text)  # Annotated[str, ..., NoNul]
