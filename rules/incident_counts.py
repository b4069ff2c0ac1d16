"""The plain count of a reader's incidents against a pattern, without durable-rules.

The reference the engine in rules.incidents is tested against (tests/rules): a pattern counts the
incidents of its kinds whose day, in the library's time zone, lies in its window and not after `as_of`.
It is not on the production path; it states the same rule in a dozen lines, so that a difference
between the two is a bug in one of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from zoneinfo import ZoneInfo

from kodex.rules.facts import local_day
from kodex.rules.incidents import IncidentCount, window_start
from kodex.rules.policy import IncidentPattern
from kodex.rules.records import Incident

__all__ = ["count_matching"]


def count_matching(pattern: IncidentPattern, incidents: Sequence[Incident], day: date, zone: ZoneInfo) -> IncidentCount:
    """The incidents that count for `pattern` on `day`, in their order, and whether there are enough."""
    since = window_start(pattern, day)
    kinds = set(pattern.kinds)
    matched = []
    for incident in incidents:
        at = local_day(incident.at, zone)
        if incident.kind in kinds and at <= day and (since is None or since <= at):
            matched.append(incident)
    return IncidentCount(tuple(matched), pattern.at_least, since)
