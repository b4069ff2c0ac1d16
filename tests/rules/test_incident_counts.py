"""The plain count (rules.incident_counts), the reference the durable-rules engine is held to: what it counts."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from kodex.rules.incident_counts import count_matching
from kodex.rules.policy import IncidentPattern
from kodex.rules.records import Incident

AS_OF = date(2026, 11, 22)
PRAGUE = ZoneInfo("Europe/Prague")
LOSSES = IncidentPattern(kinds=["item_lost", "item_damaged"], at_least=2, within="1 year")


def incident(n: int, kind: str, at: date | datetime) -> Incident:
    return Incident(type="incident", library="test", id=f"I-{n}", reader="R-1", kind=kind, at=at)


@pytest.mark.parametrize(
    ("at", "counts"),
    [
        pytest.param(date(2025, 11, 22), False, id="the-day-before-the-window"),
        pytest.param(date(2025, 11, 23), True, id="the-first-day-of-the-window"),
        pytest.param(AS_OF, True, id="as-of-itself"),
        pytest.param(date(2026, 11, 23), False, id="the-day-after-as-of"),
        pytest.param(datetime(2026, 11, 22, 23, 30, tzinfo=UTC), False, id="late-utc-evening-is-the-next-prague-day"),
        pytest.param(datetime(2025, 11, 22, 23, 30, tzinfo=UTC), True, id="late-utc-evening-enters-the-window"),
    ],
)
def test_an_incident_counts_on_its_prague_day_within_the_window_up_to_as_of(at: date | datetime, counts: bool) -> None:
    counted = count_matching(LOSSES, [incident(1, "item_lost", at)], AS_OF, PRAGUE)
    assert counted.matched == ((incident(1, "item_lost", at),) if counts else ())
    assert counted.window_from == date(2025, 11, 23)


def test_only_the_patterns_kinds_count_and_enough_of_them_hold() -> None:
    history = [incident(1, "item_lost", date(2026, 1, 5)), incident(2, "card_lost", date(2026, 2, 1))]
    one = count_matching(LOSSES, history, AS_OF, PRAGUE)
    assert one.matched == (history[0],)
    assert not one.holds
    two = count_matching(LOSSES, [*history, incident(3, "item_damaged", date(2026, 3, 1))], AS_OF, PRAGUE)
    assert [i.id for i in two.matched] == ["I-1", "I-3"]
    assert two.holds


def test_without_a_window_every_incident_up_to_as_of_counts() -> None:
    pattern = IncidentPattern(kinds=["card_lost"], at_least=2)
    history = [incident(1, "card_lost", date(1990, 1, 1)), incident(2, "card_lost", AS_OF)]
    counted = count_matching(pattern, history, AS_OF, PRAGUE)
    assert counted.matched == tuple(history)
    assert counted.window_from is None
    assert counted.holds
