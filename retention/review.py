"""Each subject's next review date: the earliest day any rule could change its outcome.

A nightly run touches only the subjects due (`next_review` on or before the
night), so the work is proportional to what changes, not to the population.
The date is the earliest of:

- the day after each deadline a rule is waiting for (`as_of > X`);
- the reader's next birthday, when a rule in force looks at the age;
- a requested erasure dated in the future (it counts from its day);
- the day after a legal hold or an exception ends, and the day an exception starts;
- the day a counted incident leaves its window, or a future-dated incident arrives;
- the day a rule or a parameter value of the library comes into or goes out of force.

A subject with an error is due again the next day. A subject none of these
apply to is not reviewed again until its records change (an import makes it
due) or a `--full` run sweeps everyone.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

from kodex.rules.evaluator import Outcome, Status
from kodex.rules.expressions import Condition
from kodex.rules.facts import local_day, local_time
from kodex.rules.incidents import window_start
from kodex.rules.periods import Period, add_period, age_on
from kodex.rules.records import CameraRecording, ExceptionGrant, Incident, Reader
from kodex.rules.ruleset import CompiledLibrary, CompiledRule, LibraryAt

__all__ = ["NEVER", "next_review", "policy_changes"]

NEVER = date(9999, 12, 31)  # not until its records change


def policy_changes(library: CompiledLibrary) -> list[date]:
    """Every day on which a rule or a parameter value of the library comes into or goes out of force."""
    days = set()
    for rule in library.rules:
        days.add(rule.rule.effective_from)
        if rule.rule.effective_to is not None:
            days.add(rule.rule.effective_to + timedelta(days=1))
    for values in library.params.values():
        days.update(values)
    return sorted(days)


def next_review(
    snapshot: LibraryAt,
    subject: Reader | CameraRecording,
    outcomes: Sequence[Outcome],
    grants: Sequence[ExceptionGrant],
    incidents: Sequence[Incident],
    changes: Sequence[date],
) -> date:
    day = snapshot.day
    tomorrow = day + timedelta(days=1)
    if any(o.status is Status.ERROR for o in outcomes):
        return tomorrow
    zone = snapshot.library.zone
    candidates: list[date] = [d for d in changes if d > day][:1]
    candidates.extend(_deadline_days(outcomes, zone))
    hold = subject.legal_hold
    if hold is not None and hold.until is not None:
        candidates.append(_day_after(hold.until))
    for grant in grants:
        candidates.extend((grant.from_, _day_after(grant.until)))
    if isinstance(subject, Reader):
        candidates.extend(_reader_days(snapshot, subject, incidents))
    # a change later today (a recording's period ending at 05:00 when the run is at 02:00) is due tomorrow
    coming = [d for d in candidates if d >= day]
    return max(min(coming), tomorrow) if coming else NEVER


def _deadline_days(outcomes: Sequence[Outcome], zone: ZoneInfo) -> Iterable[date]:
    """The day after each deadline a rule is waiting for (`as_of > X` not yet holding)."""
    for outcome in outcomes:
        env = outcome.env
        if env is None or outcome.rule.pattern is not None:
            continue  # not traced (nothing to wait for is known), or an incident rule (its days come below)
        for condition in _deadlines(outcome.rule):  # only a deadline moves with time
            try:
                if condition.holds(env) is not False:
                    continue
                deadline = condition.deadline(env)  # type: ignore[misc]
                if deadline is None:
                    continue
                if isinstance(deadline, datetime):
                    yield local_time(deadline + timedelta(seconds=1), zone).date()
                else:
                    yield deadline + timedelta(days=1)
            except OverflowError:  # a deadline at the end of the calendar never comes
                continue
            except Exception:
                continue


def _day_after(day: date) -> date:
    return day if day == date.max else day + timedelta(days=1)  # a hold "until 9999-12-31" never ends


def _reader_days(snapshot: LibraryAt, reader: Reader, incidents: Sequence[Incident]) -> Iterable[date]:
    day, zone = snapshot.day, snapshot.library.zone
    if reader.birth_date is not None and _looks_at_age(snapshot):
        yield _next_birthday(reader.birth_date, day)
    for requested in (reader.erasure_requested_at, reader.history_erasure_requested_at):
        at = local_day(requested, zone)
        if at is not None:
            yield at
    for rule in snapshot.incident_rules:
        pattern = rule.incident_pattern
        for incident in incidents:
            at = local_day(incident.at, zone)
            yield at  # a future-dated incident starts to count on its day
            if pattern.within is not None and window_start(pattern, day) is not None:
                try:
                    yield add_period(at, Period.parse(pattern.within))  # the first day it no longer counts
                except (OverflowError, ValueError):
                    continue


@cache
def _deadlines(rule: CompiledRule) -> tuple[Condition, ...]:
    """The rule's conditions of the form `as_of > X` (computed once per rule)."""
    return tuple(condition for condition in rule.conditions if condition.deadline is not None)


def _looks_at_age(snapshot: LibraryAt) -> bool:
    return _reads_age(snapshot.rules["reader"])


@cache
def _reads_age(rules: tuple[CompiledRule, ...]) -> bool:
    return any("age" in condition.names for rule in rules for condition in rule.conditions)


def _next_birthday(birth: date, day: date) -> date:
    """The first day after `day` on which the completed age changes."""
    age = age_on(birth, day)
    probe = day + timedelta(days=1)
    # at most a year ahead: step to the anniversary in this or next year, then check the 28 Feb rule
    for year in (day.year, day.year + 1):
        try:
            anniversary = birth.replace(year=year)
        except ValueError:  # 29 Feb in a common year: the birthday counts on 28 Feb
            anniversary = date(year, 2, 28)
        if anniversary >= probe and age_on(birth, anniversary) > age:
            return anniversary
    return day + timedelta(days=366)
