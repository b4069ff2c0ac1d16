"""Calendar arithmetic as the law counts it.

Periods are calendar periods: adding months or years to a day that the target
month lacks gives that month's last day (2024-02-29 + 1 year = 2025-02-28;
2023-01-31 + 1 month = 2023-02-28). Age is completed years; a person born on
29 February turns a year older on 28 February in a non-leap year.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TypeVar

from kodex.errors import InvalidPeriod

__all__ = ["Period", "add_period", "age_on", "end_of_year"]

_Day = TypeVar("_Day", date, datetime)
_PERIOD = re.compile(r"^\s*(\d+)\s+(day|days|month|months|year|years)\s*$")


@dataclass(frozen=True, slots=True)
class Period:
    """A calendar period: whole years, months or days."""

    years: int = 0
    months: int = 0
    days: int = 0

    @classmethod
    def parse(cls, text: str) -> Period:
        match = _PERIOD.match(text)
        if not match:
            raise InvalidPeriod(f"{text!r} is not a period; write e.g. '24 months', '1 year' or '7 days'")
        count, unit = int(match.group(1)), match.group(2)
        if unit.startswith("year"):
            return cls(years=count)
        if unit.startswith("month"):
            return cls(months=count)
        return cls(days=count)

    def __str__(self) -> str:
        for count, unit in ((self.years, "year"), (self.months, "month"), (self.days, "day")):
            if count:
                return f"{count} {unit}{'' if count == 1 else 's'}"
        return "0 days"

    def __neg__(self) -> Period:
        return Period(-self.years, -self.months, -self.days)


def add_period(day: _Day, period: Period) -> _Day:
    """Add a calendar period; a day the target month lacks becomes its last day."""
    months = day.month - 1 + period.months + 12 * period.years
    year, month = day.year + months // 12, months % 12 + 1
    last = calendar.monthrange(year, month)[1]
    moved = day.replace(year=year, month=month, day=min(day.day, last))
    return moved + timedelta(days=period.days)


def age_on(birth_date: date, day: date) -> int:
    """Completed years on `day`; born 29 Feb counts a birthday on 28 Feb in common years."""
    month, birthday = birth_date.month, birth_date.day
    if month == 2 and birthday == 29 and not calendar.isleap(day.year):
        birthday = 28
    years = day.year - birth_date.year
    return years if (day.month, day.day) >= (month, birthday) else years - 1


def end_of_year(day: date) -> date:
    """31 December of the year of `day`."""
    return date(day.year, 12, 31)
