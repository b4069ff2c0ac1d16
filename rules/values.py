"""The values kodex can keep and compute with, checked where they come in (records, API bodies and parameters).

A day or moment must lie between the years 1000 and 8999: policies add periods of years to days and convert
moments between time zones, and Python's calendar ends at the years 1 and 9999. Text must not hold the NUL
character, which PostgreSQL cannot store (SQLite could, so both stores refuse it alike). Messages never repeat the
value they refuse.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, TypeVar

from pydantic import AfterValidator

__all__ = [
    "FIRST_DAY",
    "LAST_DAY",
    "CalendarDate",
    "CalendarDay",
    "CalendarMoment",
    "NoNul",
    "check_text",
    "within_calendar",
]

FIRST_DAY, LAST_DAY = date(1000, 1, 1), date(8999, 12, 31)
_D = TypeVar("_D", bound=date)


def within_calendar(value: _D) -> _D:
    day = value.date() if isinstance(value, datetime) else value
    if not FIRST_DAY <= day <= LAST_DAY:
        raise ValueError(f"must lie between the years {FIRST_DAY.year} and {LAST_DAY.year}")
    return value


def check_text(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not hold the NUL character (U+0000)")
    return value


CalendarDate = Annotated[date, AfterValidator(within_calendar)]
CalendarMoment = Annotated[datetime, AfterValidator(within_calendar)]
CalendarDay = Annotated[date | datetime, AfterValidator(within_calendar)]  # a day, or a moment of one
NoNul = AfterValidator(check_text)  # Annotated[str, ..., NoNul]
