"""The library's today: the one place kodex turns the machine's clock into a day.

A day is always the library's own (its time zone in the policy, Europe/Prague by default):
the day a request is received, an exception starts, a run is dated. Everything below it (rules/) takes that
day as `as_of` and never reads the clock.
"""

from __future__ import annotations

from datetime import date, datetime

from kodex.rules.ruleset import Ruleset

__all__ = ["library_today"]


def library_today(ruleset: Ruleset, library: str) -> date:
    """Today in the library's time zone: the day a request is received or an exception starts, by default."""
    return datetime.now(ruleset.library(library).zone).date()
