"""The library's today: the one place kodex turns the machine's clock into a moment and a day.

A day is always the library's own (its time zone in the policy, Europe/Prague by default):
the day a request is received, an exception starts, a run is dated. Everything below it (rules/) takes that
day as `as_of` and never reads the clock.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from kodex.rules.ruleset import Ruleset

__all__ = ["library_now", "library_today", "now"]


def now() -> datetime:
    """The machine's clock, as an aware moment (the one place it is read for a library's now and today)."""
    return datetime.now(UTC)


def library_now(ruleset: Ruleset, library: str) -> datetime:
    """The current moment in the library's time zone."""
    return now().astimezone(ruleset.library(library).zone)


def library_today(ruleset: Ruleset, library: str) -> date:
    """Today in the library's time zone: the day a request is received or an exception starts, by default."""
    return library_now(ruleset, library).date()
