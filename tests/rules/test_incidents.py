"""Incident rules: "repeatedly" as the regulations count it, on durable-rules, checked against the plain count.

Every incident rule of the policy is tested on what its article demands (one
short of the threshold, exactly at it, other kinds, another reader's history,
an incident after `as_of`, a director's exception); the durable-rules engine
is checked against `count_matching` on random histories, at scale (no session
limit, no leak, no event left behind), from several threads, and for the
timer threads it must not start.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import random
import subprocess
import sys
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kodex.rules import incidents as incidents_module
from kodex.rules.incident_counts import count_matching
from kodex.rules.incidents import IncidentCount, IncidentRules, pending, window_start
from kodex.rules.loading import load_policy
from kodex.rules.policy import INCIDENT_KINDS, IncidentPattern, Rule
from kodex.rules.records import Incident
from kodex.rules.ruleset import Ruleset
from kodex.rules.validation import RecordSet, read_records
from kodex.services.evaluation import evaluate
from tests.support import POLICY, ROOT

AS_OF = date(2026, 11, 22)
PRAGUE = ZoneInfo("Europe/Prague")

INCIDENT_RULES: list[tuple[str, Rule]] = [
    (library.id, rule)
    for library in load_policy(POLICY).policy.libraries
    for rule in library.rules
    if rule.incidents is not None
]
RULE_IDS = [rule.id for _, rule in INCIDENT_RULES]
CATALOGUE = {  # DESIGN.md, Rule catalogue: what each regulation counts, how many times, and what it leads to
    "zdirec.exclusion.unauthorised_removal": ({"unauthorised_removal"}, 1, "propose_exclusion"),  # čl. 4 odst. 3–4
    "kntb.exclusion.repeated_loss_or_damage": ({"item_lost", "item_damaged"}, 2, "propose_exclusion"),  # 6.1
    "kntb.exclusion.repeated_card_loss": ({"card_lost"}, 2, "propose_exclusion"),  # 6.1
    "kntb.exclusion.unauthorised_removal": ({"unauthorised_removal"}, 1, "propose_exclusion"),  # 6.1
    "kntb.exclusion.damage_refused": ({"damage_refused"}, 1, "propose_exclusion"),  # 6.1
    "kntb.exclusion.repeated_expulsion": ({"expelled_from_premises"}, 2, "propose_exclusion"),  # 6.1
    "kntb.reservations.repeatedly_not_collected": ({"reservation_not_collected"}, 2, "revoke_reservations"),  # 5.4
    "svkpk.exclusion.repeated_expulsion": ({"expelled_from_premises"}, 2, "propose_exclusion"),  # čl. 33 odst. 1 a 3
}
each_incident_rule = pytest.mark.parametrize(("library", "rule"), INCIDENT_RULES, ids=RULE_IDS)


# ---------------------------------------------------------------- records as the record contract writes them


def reader_line(library: str, reader: str = "R-1") -> str:
    return json.dumps({"type": "reader", "library": library, "id": reader, "kind": "person"})


def incident_line(library: str, reader: str, number: int, kind: str, at: date | datetime) -> str:
    record = {"type": "incident", "library": library, "id": f"I-{reader}-{number}", "reader": reader, "kind": kind}
    return json.dumps({**record, "at": at.isoformat()})


def history(library: str, reader: str, kinds: Iterable[str], *, first: int = 0, days_apart: int = 23) -> list[str]:
    """One incident per kind given, a few weeks apart, the latest `days_apart` days before AS_OF."""
    return [
        incident_line(library, reader, first + n, kind, AS_OF - timedelta(days=days_apart * (n + 1)))
        for n, kind in enumerate(kinds)
    ]


def own_kinds(rule: Rule, count: int) -> list[str]:
    """`count` incidents of the rule's kinds, taking each of them in turn (item_lost, item_damaged, item_lost…)."""
    assert rule.incidents is not None
    kinds = rule.incidents.kinds
    return [kinds[n % len(kinds)] for n in range(count)]


def other_kinds(rule: Rule) -> list[str]:
    assert rule.incidents is not None
    return [kind for kind in INCIDENT_KINDS if kind not in rule.incidents.kinds]


def records_of(ruleset: Ruleset, lines: list[str], as_of: date = AS_OF) -> RecordSet:
    records, problems = read_records(lines, ruleset, as_of)
    assert not problems, [str(p) for p in problems]
    return records


def decisions(ruleset: Ruleset, lines: list[str], as_of: date = AS_OF) -> dict[tuple[str, str], dict[str, Any]]:
    """Every decision (including `retain`) by subject and rule, through the use case `kodex evaluate` runs."""
    found = {}
    for decision in evaluate(records_of(ruleset, lines, as_of), ruleset, as_of, include_all=True):
        key = (decision["subject"], decision["rule"])
        assert key not in found, key
        found[key] = decision
    return found


def named(lines: list[str]) -> list[dict[str, str]]:
    """The incidents of `lines` as a decision names them: id, kind, day."""
    return [{k: r[k] for k in ("id", "kind", "at")} for r in map(json.loads, lines) if r["type"] == "incident"]


def threshold(rule: Rule) -> int:
    assert rule.incidents is not None
    return rule.incidents.at_least


# ---------------------------------------------------------------- each incident rule of the policy


def test_the_policy_states_every_incident_rule_of_the_catalogue_with_its_threshold() -> None:
    assert set(RULE_IDS) >= set(CATALOGUE)
    for _, rule in INCIDENT_RULES:
        assert rule.incidents is not None
        if rule.id in CATALOGUE:
            kinds, at_least, action = CATALOGUE[rule.id]
            assert (set(rule.incidents.kinds), rule.incidents.at_least, rule.action) == (kinds, at_least, action)
        assert rule.subject == "reader"


@each_incident_rule
def test_one_incident_short_of_the_threshold_is_not_yet_a_ground(ruleset: Ruleset, library: str, rule: Rule) -> None:
    short = history(library, "R-1", own_kinds(rule, threshold(rule) - 1))
    decision = decisions(ruleset, [reader_line(library), *short])[("R-1", rule.id)]
    assert decision["action"] == "retain"
    assert "blocked_action" not in decision
    assert decision["incidents"] == named(short)
    assert decision["reasons"][0]["holds"] is False
    assert decision["reasons"][0]["values"] == {"incidents": threshold(rule) - 1, "at_least": threshold(rule)}


@each_incident_rule
def test_reaching_the_threshold_proposes_the_action_to_the_director_naming_the_incidents(
    ruleset: Ruleset, library: str, rule: Rule
) -> None:
    enough = history(library, "R-1", own_kinds(rule, threshold(rule)))
    decision = decisions(ruleset, [reader_line(library), *enough])[("R-1", rule.id)]
    assert decision["action"] == rule.action
    assert decision["effect"] == "propose"
    assert decision["decided_by"] == rule.decided_by == "director"
    assert decision["incidents"] == named(enough)
    assert decision["cite"] == rule.cite
    assert decision["reasons"][0]["holds"] is True
    assert decision["reasons"][0]["values"] == {"incidents": threshold(rule), "at_least": threshold(rule)}


@each_incident_rule
def test_incidents_of_other_kinds_do_not_count_towards_the_threshold(
    ruleset: Ruleset, library: str, rule: Rule
) -> None:
    own = history(library, "R-1", own_kinds(rule, threshold(rule) - 1))
    others = history(library, "R-1", other_kinds(rule) * 4, first=100, days_apart=3)  # four of every other kind
    decision = decisions(ruleset, [reader_line(library), *others, *own])[("R-1", rule.id)]
    assert decision["action"] == "retain"
    assert decision["incidents"] == named(own)

    one_more = history(library, "R-1", own_kinds(rule, threshold(rule)))
    decision = decisions(ruleset, [reader_line(library), *others, *one_more])[("R-1", rule.id)]
    assert decision["action"] == rule.action
    assert decision["incidents"] == named(one_more)


@each_incident_rule
def test_another_readers_incidents_are_not_counted(ruleset: Ruleset, library: str, rule: Rule) -> None:
    own = history(library, "R-1", own_kinds(rule, threshold(rule) - 1))
    theirs = history(library, "R-2", own_kinds(rule, threshold(rule) + 1), days_apart=5)
    lines = [reader_line(library, "R-1"), reader_line(library, "R-2"), reader_line(library, "R-3"), *theirs, *own]
    found = decisions(ruleset, lines)
    assert found[("R-1", rule.id)]["action"] == "retain"
    assert found[("R-1", rule.id)]["incidents"] == named(own)
    assert found[("R-2", rule.id)]["action"] == rule.action
    assert found[("R-2", rule.id)]["incidents"] == named(theirs)
    assert found[("R-3", rule.id)]["action"] == "retain"
    assert found[("R-3", rule.id)]["incidents"] == []


@each_incident_rule
def test_the_same_reader_id_in_another_library_is_another_reader(ruleset: Ruleset, library: str, rule: Rule) -> None:
    elsewhere = next(other for other in ("zdirec", "kntb", "svkpk") if other != library)
    theirs = history(elsewhere, "R-1", own_kinds(rule, threshold(rule)))
    found = decisions(ruleset, [reader_line(library), reader_line(elsewhere), *theirs])
    assert found[("R-1", rule.id)]["action"] == "retain"
    assert found[("R-1", rule.id)]["incidents"] == []


@each_incident_rule
def test_an_incident_after_as_of_does_not_count_yet(ruleset: Ruleset, library: str, rule: Rule) -> None:
    earlier = history(library, "R-1", own_kinds(rule, threshold(rule) - 1))
    tomorrow = incident_line(library, "R-1", 99, own_kinds(rule, 1)[0], AS_OF + timedelta(days=1))
    decision = decisions(ruleset, [reader_line(library), *earlier, tomorrow])[("R-1", rule.id)]
    assert decision["action"] == "retain"
    assert decision["incidents"] == named(earlier)

    today = incident_line(library, "R-1", 99, own_kinds(rule, 1)[0], AS_OF)
    decision = decisions(ruleset, [reader_line(library), *earlier, today])[("R-1", rule.id)]
    assert decision["action"] == rule.action
    assert decision["incidents"] == named([*earlier, today])


@each_incident_rule
def test_an_incident_late_in_the_evening_counts_on_the_librarys_day(ruleset: Ruleset, library: str, rule: Rule) -> None:
    """23:30 UTC on 22 Nov is already 23 Nov in Prague: after as_of; 23:30 UTC on 21 Nov is 22 Nov: counts."""
    earlier = history(library, "R-1", own_kinds(rule, threshold(rule) - 1))
    kind = own_kinds(rule, 1)[0]
    evening = datetime(2026, 11, 22, 23, 30, tzinfo=UTC)
    late = incident_line(library, "R-1", 99, kind, evening)
    assert decisions(ruleset, [reader_line(library), *earlier, late])[("R-1", rule.id)]["action"] == "retain"
    in_time = incident_line(library, "R-1", 99, kind, evening - timedelta(days=1))
    assert decisions(ruleset, [reader_line(library), *earlier, in_time])[("R-1", rule.id)]["action"] == rule.action


@each_incident_rule
def test_director_exception_on_an_incident_rule_retains_and_names_the_blocked_action(
    ruleset: Ruleset, library: str, rule: Rule
) -> None:
    enough = history(library, "R-1", own_kinds(rule, threshold(rule)))
    grant = {"type": "exception", "library": library, "id": "E-1", "subject": "R-1", "rule": rule.id, "role": "director",
             "granted_by": "ředitel", "reason": "soudní spor", "from": "2026-11-01", "until": "2026-12-31"}  # fmt: skip
    decision = decisions(ruleset, [reader_line(library), *enough, json.dumps(grant)])[("R-1", rule.id)]
    assert decision["action"] == "retain"
    assert decision["blocked_action"] == rule.action
    assert decision["exception"] == {"id": "E-1", "role": "director", "from": "2026-11-01", "until": "2026-12-31"}
    assert decision["incidents"] == named(enough)
    assert "reason" not in json.dumps(decision["exception"])

    ended = {**grant, "until": "2026-11-21"}
    decision = decisions(ruleset, [reader_line(library), *enough, json.dumps(ended)])[("R-1", rule.id)]
    assert decision["action"] == rule.action


# ---------------------------------------------------------------- events left in the engine


def left_behind() -> list[Any]:
    """The events still held in the engine's session: none may outlive the evaluation that posted it."""
    return pending()


def test_pending_is_empty_for_a_ruleset_no_reader_has_been_evaluated_against() -> None:
    IncidentRules("never-evaluated", "pending", {"lost": IncidentPattern(kinds=["card_lost"], at_least=1)})
    assert pending() == []


# ---------------------------------------------------------------- the window


def incident(n: int, kind: str, at: date | datetime, reader: str = "R-1") -> Incident:
    return Incident(type="incident", library="test", id=f"I-{n}", reader=reader, kind=kind, at=at)


WINDOWS = [  # within, as_of, the last day not counted, the first day counted
    pytest.param("1 year", date(2026, 11, 22), date(2025, 11, 22), date(2025, 11, 23), id="1-year"),
    pytest.param("1 year", date(2028, 2, 29), date(2027, 2, 28), date(2027, 3, 1), id="1-year-from-29-feb"),
    pytest.param("1 year", date(2027, 3, 1), date(2026, 3, 1), date(2026, 3, 2), id="1-year-from-1-mar"),
    pytest.param("1 month", date(2026, 3, 31), date(2026, 2, 28), date(2026, 3, 1), id="1-month-from-31-mar"),
    pytest.param("30 days", date(2026, 3, 31), date(2026, 3, 1), date(2026, 3, 2), id="30-days"),
]


@pytest.mark.parametrize(("within", "as_of", "outside", "first"), WINDOWS)
def test_window_runs_from_the_day_after_as_of_minus_the_period_to_as_of_inclusive(
    within: str, as_of: date, outside: date, first: date
) -> None:
    pattern = IncidentPattern(kinds=["card_lost"], at_least=1, within=within)
    rules = IncidentRules(f"window-{within}".replace(" ", "-"), "window", {"lost": pattern})
    assert window_start(pattern, as_of) == first
    days = [outside, first, as_of, as_of + timedelta(days=1)]
    for n, day in enumerate(days):
        counted = rules.evaluate(["lost"], [incident(n, "card_lost", day)], as_of, PRAGUE)["lost"]
        assert counted == count_matching(pattern, [incident(n, "card_lost", day)], as_of, PRAGUE)
        assert counted.holds is (first <= day <= as_of), day
        assert counted.window_from == first
    together = [incident(n, "card_lost", day) for n, day in enumerate(days)]
    counted = rules.evaluate(["lost"], together, as_of, PRAGUE)["lost"]
    assert [i.at for i in counted.matched] == [first, as_of]
    assert counted == count_matching(pattern, together, as_of, PRAGUE)


def test_without_a_window_all_history_up_to_as_of_counts() -> None:
    pattern = IncidentPattern(kinds=["card_lost"], at_least=2)
    rules = IncidentRules("window-none", "window", {"lost": pattern})
    ancient = [incident(1, "card_lost", date(1990, 1, 1)), incident(2, "card_lost", AS_OF)]
    counted = rules.evaluate(["lost"], ancient, AS_OF, PRAGUE)["lost"]
    assert counted == IncidentCount(tuple(ancient), 2, None)
    assert counted.holds


# ---------------------------------------------------------------- durable-rules against the plain count


def period(unit: str) -> st.SearchStrategy[str]:
    most = {"day": 1200, "month": 40, "year": 4}[unit]
    return st.integers(1, most).map(lambda n: f"{n} {unit}{'' if n == 1 else 's'}")


PATTERNS = st.builds(
    IncidentPattern,
    kinds=st.lists(st.sampled_from(INCIDENT_KINDS), min_size=1, max_size=len(INCIDENT_KINDS), unique=True),
    at_least=st.integers(1, 4),
    within=st.none() | period("day") | period("month") | period("year"),
)
EPOCH = date(2023, 1, 1)
SPAN = 4 * 366  # histories and as_of range over four years
MOMENTS = st.integers(0, SPAN).map(lambda d: EPOCH + timedelta(days=d)) | st.builds(
    lambda d, minute: datetime.combine(EPOCH + timedelta(days=d), datetime.min.time(), UTC) + timedelta(minutes=minute),
    st.integers(0, SPAN),
    st.integers(0, 24 * 60 - 1),
)  # a moment with an offset counts on its day in Prague (it may be the next day)
READERS = st.sampled_from(("R-1", "R-2", "R-3", "R-4"))
DAYS = st.integers(0, SPAN).map(lambda d: EPOCH + timedelta(days=d))


@st.composite
def cases(draw: st.DrawFn) -> tuple[list[IncidentPattern], list[tuple[str, str, date | datetime]], date]:
    """Patterns, a history of incidents on a few readers (kinds the patterns count are likelier), and as_of."""
    patterns = draw(st.lists(PATTERNS, min_size=1, max_size=3))
    counted = sorted({kind for pattern in patterns for kind in pattern.kinds})
    kinds = st.sampled_from(counted) | st.sampled_from(INCIDENT_KINDS)
    rows = draw(st.lists(st.tuples(READERS, kinds, MOMENTS), max_size=40))
    return patterns, rows, draw(DAYS)


_COMPILED: dict[str, IncidentRules] = {}  # one ruleset per distinct pattern set (bounded by max_examples)


def compiled(patterns: list[IncidentPattern]) -> IncidentRules:
    """The pattern set's IncidentRules; its revision is the set's hash, so different sets never share a name."""
    canonical = json.dumps([p.model_dump() for p in patterns], sort_keys=True)
    revision = hashlib.sha256(canonical.encode()).hexdigest()[:16]
    if revision not in _COMPILED:
        _COMPILED[revision] = IncidentRules(revision, "property", {f"p{i}": p for i, p in enumerate(patterns)})
    return _COMPILED[revision]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_durable_rules_count_the_same_incidents_as_the_plain_count(
    case: tuple[list[IncidentPattern], list[tuple[str, str, date | datetime]], date],
) -> None:
    patterns, rows, as_of = case
    rules = compiled(patterns)
    keys = [f"p{i}" for i in range(len(patterns))]
    per_reader: dict[str, list[Incident]] = {}
    for n, (reader, kind, at) in enumerate(rows):
        per_reader.setdefault(reader, []).append(incident(n, kind, at, reader))
    for reader, incidents in per_reader.items():
        counted = rules.evaluate(keys, incidents, as_of, PRAGUE)
        for key, pattern in zip(keys, patterns, strict=True):
            expected = count_matching(pattern, incidents, as_of, PRAGUE)
            assert counted[key].matched == expected.matched, (reader, key)
            assert counted[key].holds is expected.holds
            assert counted[key] == expected
    assert left_behind() == []


# ---------------------------------------------------------------- at scale, in threads, without timers


def population(readers: int, seed: int) -> list[str]:
    """`readers` readers over the three libraries, each with 1–4 incidents over three years (some after AS_OF)."""
    rng = random.Random(seed)
    lines = []
    for number in range(readers):
        library = ("zdirec", "kntb", "svkpk")[number % 3]
        reader = f"R-{number:05d}"
        lines.append(reader_line(library, reader))
        for n in range(rng.randint(1, 4)):
            at = AS_OF - timedelta(days=rng.randint(-30, 3 * 365))
            lines.append(incident_line(library, reader, n, rng.choice(INCIDENT_KINDS), at))
    return lines


def expected_proposals(ruleset: Ruleset, records: RecordSet) -> set[tuple[str, str]]:
    """(reader, rule) for every incident rule the plain count says holds."""
    found = set()
    for reader in records.readers:
        library = ruleset.library(reader.library)
        incidents = records.incidents_for(reader.library, reader.id)
        for rule in library.at(AS_OF).incident_rules:
            assert rule.pattern is not None
            if count_matching(rule.pattern, incidents, AS_OF, library.zone).holds:
                found.add((reader.id, rule.id))
    return found


def resident_bytes() -> int:
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


READERS_AT_SCALE = 6_000
# The three measured rounds evaluate 18,000 readers and post ~120,000 events into the engine. Once warmed up, resident
# memory does not grow (0–20 KB measured: allocator noise). With a simulated leak of 100 bytes per reader evaluation
# it grew by 0.74–0.93 MB (part of the leak lands in memory the warm-up round freed), so this bound catches a leak of
# 100 bytes per reader; a retained event (its JSON alone is ~120 bytes, 40,000 events a round) would exceed it many
# times over; and it leaves 25 times the noise measured.
LEAK_BOUND = 512 * 1024


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="resident memory is read from /proc")
def test_thousands_of_readers_are_decided_with_flat_memory_and_no_event_left_behind(ruleset: Ruleset) -> None:
    records = records_of(ruleset, population(READERS_AT_SCALE, seed=11))
    assert len(records.readers) > 1024  # more readers than durable-rules allows live sessions
    incident_rules = {rule.id for _, rule in INCIDENT_RULES}

    def decide_everyone() -> set[tuple[str, str]]:
        proposals = set()
        for decision in evaluate(records, ruleset, AS_OF):
            assert "error" not in decision, decision
            if decision["rule"] in incident_rules:
                assert decision["action"] != "retain"
                proposals.add((decision["subject"], decision["rule"]))
        return proposals

    expected = expected_proposals(ruleset, records)
    assert len(expected) > 1000
    assert decide_everyone() == expected  # warm-up: snapshots, code paths, the engine's session
    gc.collect()
    before = resident_bytes()
    for _ in range(3):
        assert decide_everyone() == expected
    gc.collect()
    growth = resident_bytes() - before
    assert growth < LEAK_BOUND, f"resident memory grew by {growth:,} bytes over 3 rounds"
    assert left_behind() == []


def test_evaluating_from_four_threads_at_once_gives_the_sequential_results(ruleset: Ruleset) -> None:
    records = records_of(ruleset, population(600, seed=5))
    sequential = list(evaluate(records, ruleset, AS_OF, include_all=True))
    assert any("incidents" in d and d["incidents"] and d["action"] != "retain" for d in sequential)
    start = threading.Barrier(4)

    def in_thread(_: int) -> list[dict[str, Any]]:
        start.wait(timeout=30)
        return list(evaluate(records, ruleset, AS_OF, include_all=True))

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(in_thread, range(4)))
    for result in results:
        assert result == sequential
    assert left_behind() == []


THREADS = 8
READERS_PER_THREAD = 300


def random_readers(rng: random.Random, count: int, first: int) -> list[list[Incident]]:
    """`count` readers' histories of 0–8 incidents over two years, some after AS_OF, some moments with an offset."""
    readers = []
    for number in range(first, first + count):
        history = []
        for n in range(rng.randint(0, 8)):
            day = AS_OF - timedelta(days=rng.randint(-60, 2 * 365))
            at: date | datetime = day
            if rng.random() < 0.3:
                at = datetime.combine(day, datetime.min.time(), UTC) + timedelta(minutes=rng.randint(0, 24 * 60 - 1))
            history.append(incident(n, rng.choice(INCIDENT_KINDS), at, f"R-{number:05d}"))
        readers.append(history)
    return readers


def test_eight_threads_evaluating_at_once_each_count_what_the_plain_count_counts() -> None:
    patterns = {
        "loss": IncidentPattern(kinds=["item_lost", "item_damaged"], at_least=2, within="1 year"),
        "card": IncidentPattern(kinds=["card_lost"], at_least=2),
        "removal": IncidentPattern(kinds=["unauthorised_removal"], at_least=1, within="30 days"),
    }
    rules = IncidentRules("eight-threads", "threads", patterns)
    keys = list(patterns)
    start = threading.Barrier(THREADS)

    def in_thread(number: int) -> list[str]:
        rng = random.Random(number)
        readers = random_readers(rng, READERS_PER_THREAD, number * READERS_PER_THREAD)
        wrong = []
        start.wait(timeout=30)
        for history in readers:
            counted = rules.evaluate(keys, history, AS_OF, PRAGUE)
            for key, pattern in patterns.items():
                if counted[key] != count_matching(pattern, history, AS_OF, PRAGUE):
                    wrong.append(f"thread {number}, {history[0].reader if history else 'no incidents'}, {key}")
        return wrong

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        results = list(pool.map(in_thread, range(THREADS)))
    assert [wrong for wrong in results if wrong] == []
    assert left_behind() == []


def test_control_the_threads_above_do_find_incidents_that_count() -> None:
    readers = random_readers(random.Random(0), READERS_PER_THREAD, 0)
    pattern = IncidentPattern(kinds=["item_lost", "item_damaged"], at_least=2, within="1 year")
    counts = [count_matching(pattern, history, AS_OF, PRAGUE) for history in readers]
    assert sum(count.holds for count in counts) > 10  # so a thread mixing up readers' results would be seen
    assert sum(bool(count.matched) and not count.holds for count in counts) > 10


def test_an_evaluation_in_progress_does_not_hold_up_another_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    rules = IncidentRules("side-by-side", "threads", {"lost": IncidentPattern(kinds=["card_lost"], at_least=1)})
    inside, release = threading.Event(), threading.Event()
    host = incidents_module._HOST
    post = host.post

    def slow_post(name: str, message: dict[str, Any]) -> Any:  # the slow evaluation stops holding its session
        result = post(name, message)
        if threading.current_thread().name == "slow":
            inside.set()
            release.wait(timeout=30)
        return result

    def evaluate_one() -> IncidentCount:
        return rules.evaluate(["lost"], [incident(1, "card_lost", AS_OF)], AS_OF, PRAGUE)["lost"]

    monkeypatch.setattr(host, "post", slow_post)
    slow = threading.Thread(target=evaluate_one, name="slow")
    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            slow.start()
            assert inside.wait(timeout=30)
            other = pool.submit(evaluate_one)
            assert other.result(timeout=30).holds  # done while the slow evaluation is still inside the engine
            assert slow.is_alive()
    finally:
        release.set()
        slow.join(timeout=30)
    assert left_behind() == []


def test_incident_rules_start_no_timer_threads() -> None:
    before = {(type(t), t.name) for t in threading.enumerate()}
    rules = IncidentRules("no-timer-threads", "timers", {"lost": IncidentPattern(kinds=["card_lost"], at_least=1)})
    assert rules.evaluate(["lost"], [incident(1, "card_lost", AS_OF)], AS_OF, PRAGUE)["lost"].holds
    after = threading.enumerate()
    assert not [t for t in after if isinstance(t, threading.Timer)]
    assert {(type(t), t.name) for t in after} <= before


TIMERS = """
import threading, time
from datetime import date
from zoneinfo import ZoneInfo
{setup}
time.sleep(0.3)  # durable-rules' host arms its timers at 0.1 s and re-arms them as they fire
print(" ".join(sorted(type(t).__name__ for t in threading.enumerate() if t is not threading.main_thread())))
"""
FIRST_USE = """
from kodex.rules.incidents import IncidentRules
from kodex.rules.policy import IncidentPattern
from kodex.rules.records import Incident
rules = IncidentRules("fresh", "timers", {"lost": IncidentPattern(kinds=["card_lost"], at_least=1)})
lost = Incident(type="incident", library="t", id="I-1", reader="R-1", kind="card_lost", at=date(2026, 1, 1))
assert rules.evaluate(["lost"], [lost], date(2026, 2, 1), ZoneInfo("Europe/Prague"))["lost"].holds
"""
STOCK_HOST = "from durable.engine import Host\nHost()"


def threads_after(setup: str) -> list[str]:
    """The classes of the threads besides the main one, in a fresh process, 0.3 s after running `setup`."""
    completed = subprocess.run(
        [sys.executable, "-c", TIMERS.format(setup=setup)],
        cwd=ROOT, capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    return completed.stdout.split()


def test_a_fresh_process_using_incident_rules_runs_no_thread_besides_its_own() -> None:
    assert threads_after(FIRST_USE) == []


def test_control_a_stock_durable_rules_host_does_start_timer_threads() -> None:
    assert "Timer" in threads_after(STOCK_HOST)  # so the test above would see them
