"""The values kodex can keep and compute with, checked where they come in (records, API bodies and parameters).

Python's calendar ends at the years 1 and 9999. A record's day may be anything in it (library systems write
9999-12-31 for "never"), but a moment must lie a day inside it, so that converting it to the library's time zone
stays in the calendar. A day kodex is asked to decide for, count a deadline from or keep a hold or exception
until (API bodies and parameters) lies between the years 1000 and 8999: policies add periods of years to it.
Text must not hold the NUL character, which PostgreSQL cannot store (SQLite could, so both stores refuse it
alike). Messages never repeat the value they refuse.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, TypeVar

from pydantic import AfterValidator

__all__ = [
    "FIRST_DAY", "LAST_DAY", "CalendarDate", "CalendarDay", "CalendarMoment", "NoNul", "RecordDay", "check_text",
    "within_calendar",
]  # fmt: skip

FIRST_DAY, LAST_DAY = date(1000, 1, 1), date(8999, 12, 31)
_D = TypeVar("_D", bound=date)


def within_calendar(value: _D) -> _D:
    """A day or moment kodex decides for or counts from: between FIRST_DAY and LAST_DAY."""
    day = value.date() if isinstance(value, datetime) else value
    if not FIRST_DAY <= day <= LAST_DAY:
        raise ValueError(f"must lie between the years {FIRST_DAY.year} and {LAST_DAY.year}")
    return value


def _convertible(value: _D) -> _D:
    """A record's day as it is; a record's moment a day inside the calendar (any time zone can take it)."""
    if isinstance(value, datetime) and not date.min + timedelta(days=1) <= value.date() <= date.max - timedelta(days=1):
        raise ValueError("must lie between the years 1 and 9999, a day inside either end")
    return value


def check_text(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not hold the NUL character (U+0000)")
    return value


CalendarDate = Annotated[date, AfterValidator(within_calendar)]
CalendarMoment = Annotated[datetime, AfterValidator(within_calendar)]
CalendarDay = Annotated[date | datetime, AfterValidator(within_calendar)]  # a day, or a moment of one
RecordDay = Annotated[date | datetime, AfterValidator(_convertible)]  # a record's day or moment
NoNul = AfterValidator(check_text)  # Annotated[str, ..., NoNul]
