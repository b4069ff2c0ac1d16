"""The native evaluator: facts and `as_of` in, one outcome per rule in force out.

Pure: no clock, database or I/O. A rule fires when every condition of its
`when` list is known to hold. A destructive action (rules.actions) is then
blocked by an active legal hold, and any action by an active exception on
its rule for the subject; a blocked outcome is `retain` and names the reason.
An error while evaluating a subject is an outcome too: it never acts (fail
closed) and carries no personal data.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from enum import StrEnum
from functools import cache
from typing import Any, NamedTuple

from kodex.rules.expressions import Condition
from kodex.rules.facts import camera_facts, held_keys, local_time, reader_facts
from kodex.rules.incidents import IncidentCount
from kodex.rules.records import CameraRecording, ExceptionGrant, Incident, Reader
from kodex.rules.ruleset import CompiledRule, LibraryAt

__all__ = ["ConditionResult", "Outcome", "Status", "evaluate_subject", "pattern_text", "subject_type_of"]

Subject = Reader | CameraRecording


class Status(StrEnum):
    FIRES = "fires"
    BLOCKED = "blocked"
    NOT_APPLICABLE = "not_applicable"
    ERROR = "error"


class ConditionResult(NamedTuple):
    text: str
    holds: bool | None
    values: Mapping[str, Any]
    deadline: Any  # for `as_of > X`: X, the last day (or moment) the condition does not hold


class Outcome(NamedTuple):
    rule: CompiledRule
    status: Status
    env: Mapping[str, Any] | None = None  # the facts the rule was decided on; reasons are traced from them on demand
    exception: ExceptionGrant | None = None
    legal_hold_until: date | None = None
    legal_hold: bool = False
    error: str | None = None

    @property
    def conditions(self) -> tuple[ConditionResult, ...]:
        """Each condition of the rule with its value and the facts it compared (empty when not traced)."""
        env = self.env
        if env is None:
            return ()
        if self.rule.pattern is not None:
            return (_pattern_result(self.rule, env[_COUNT]),)
        return tuple(_trace(c, env) for c in self.rule.conditions)

    @property
    def incidents(self) -> tuple[Incident, ...]:
        """For an incident rule: the reader's incidents that match its pattern (empty otherwise)."""
        return () if self.env is None or _COUNT not in self.env else self.env[_COUNT].matched


_COUNT = "incident_count"


def pattern_text(rule: CompiledRule) -> str:
    """An incident pattern in words, e.g. 'at least 2 incidents of item_lost or item_damaged within 1 year'."""
    pattern = rule.incident_pattern
    kinds = " or ".join(pattern.kinds)
    window = f" within {pattern.within}" if pattern.within else ""
    noun = "incident" if pattern.at_least == 1 else "incidents"
    return f"at least {pattern.at_least} {noun} of {kinds}{window}"


def _pattern_result(rule: CompiledRule, count: IncidentCount) -> ConditionResult:
    values: dict[str, Any] = {"incidents": len(count.matched), "at_least": count.at_least}
    if count.window_from is not None:
        values["window_from"] = count.window_from
    return ConditionResult(pattern_text(rule), count.holds, values, None)


def _trace(condition: Condition, env: Mapping[str, Any]) -> ConditionResult:
    try:
        deadline = condition.deadline(env) if condition.deadline else None
        holds = condition.holds(env)
    except Exception:  # the same compiled code decided the rule; if it cannot be traced, say unknown
        return ConditionResult(condition.text, None, {}, None)
    values = {name: env[name] for name in condition.names}
    if "valid_until" in values and "valid_until_derived" in env:
        values["valid_until_derived"] = env["valid_until_derived"]
    return ConditionResult(condition.text, holds, values, deadline)


def subject_type_of(subject: Subject) -> str:
    return "reader" if isinstance(subject, Reader) else "camera_recording"


def evaluate_subject(
    snapshot: LibraryAt,
    subject: Subject,
    as_of: date | datetime,
    exceptions: Sequence[ExceptionGrant] = (),
    *,
    trace_all: bool = True,
    incidents: Sequence[Incident] = (),
) -> list[Outcome]:
    """Every rule in force for `subject` on `as_of`, each with its outcome.

    A rule that fires always carries its reasons; with `trace_all` false the
    rules that do not apply skip them (the nightly hot path). A reader's
    incident rules count `incidents`, the reader's incident records.
    """
    outcomes = _state_outcomes(snapshot, subject, as_of, exceptions, trace_all)
    if snapshot.incident_rules and isinstance(subject, Reader):
        outcomes.extend(_incident_outcomes(snapshot, subject, exceptions, trace_all, incidents))
    return outcomes


def _incident_outcomes(
    snapshot: LibraryAt,
    reader: Reader,
    exceptions: Sequence[ExceptionGrant],
    trace_all: bool,
    incidents: Sequence[Incident],
) -> list[Outcome]:
    rules = snapshot.incident_rules
    library = snapshot.library
    try:
        counts = library.incidents.evaluate([r.version for r in rules], incidents, snapshot.day, library.zone)
    except Exception as error:  # fail closed: nothing is proposed on a history we could not read
        return [Outcome(rule, Status.ERROR, error=_safe(error)) for rule in rules]
    outcomes = []
    for rule in rules:
        count = counts[rule.version]
        env = {_COUNT: count}
        if not count.holds:
            outcomes.append(Outcome(rule, Status.NOT_APPLICABLE, env) if trace_all else _not_applicable(rule))
            continue
        granted = _active_exception(rule, reader.id, snapshot.day, exceptions)
        outcomes.append(Outcome(rule, Status.BLOCKED if granted else Status.FIRES, env, exception=granted))
    return outcomes


def _state_outcomes(
    snapshot: LibraryAt,
    subject: Subject,
    as_of: date | datetime,
    exceptions: Sequence[ExceptionGrant],
    trace_all: bool,
) -> list[Outcome]:
    subject_type = subject_type_of(subject)
    rules = snapshot.rules[subject_type]
    try:
        env = _facts(snapshot, subject, as_of)
    except Exception as error:  # fail closed: a subject we cannot read is not acted on
        return [Outcome(rule, Status.ERROR, error=_safe(error)) for rule in rules]
    flags: tuple[bool | None, ...]
    try:
        flags = snapshot.fires[subject_type](env)
    except Exception:  # some rule cannot be decided: decide rule by rule, so only that rule fails (closed)
        flags = tuple(None for _ in rules)
    if trace_all:
        return [_outcome(r, env, snapshot, subject, exceptions, True, f) for r, f in zip(rules, flags, strict=True)]
    outcomes = [_not_applicable(rule) for rule in rules] if None in flags else list(_idle(rules))
    for index, fired in enumerate(flags):
        if fired is not False:
            outcomes[index] = _outcome(rules[index], env, snapshot, subject, exceptions, False, fired)
    return outcomes


def _facts(snapshot: LibraryAt, subject: Subject, as_of: date | datetime) -> dict[str, Any]:
    zone = snapshot.library.zone
    if isinstance(subject, CameraRecording):
        env = camera_facts(subject, local_time(as_of, zone), zone)
    else:
        env = reader_facts(subject, snapshot.day, zone)
        env.update(snapshot.params)
        if env["valid_until"] is None and snapshot.derive_valid_until is not None:
            env["valid_until"] = snapshot.derive_valid_until.evaluate(env)
            env["valid_until_derived"] = env["valid_until"] is not None
        env["missing_mandatory"], env["excess_data"] = _inventory(snapshot, subject, env)
        return env
    env.update(snapshot.params)
    return env


def _inventory(snapshot: LibraryAt, reader: Reader, env: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    library = snapshot.library
    held = held_keys(reader)
    required = library.mandatory
    for key, condition in library.mandatory_when.items():
        if condition.holds(env):
            required = required | {key}
    missing = [] if required <= held else sorted(required - held)
    excess = [] if held <= library.allowed else sorted(held - library.allowed)
    return missing, excess


def _outcome(
    rule: CompiledRule,
    env: Mapping[str, Any],
    snapshot: LibraryAt,
    subject: Subject,
    exceptions: Sequence[ExceptionGrant],
    trace_all: bool,
    fired: bool | None,  # from the rule set's combined check; None: not known, check this rule alone
) -> Outcome:
    if snapshot.gaps:
        gap = snapshot.gaps.get(rule.id)
        if gap is not None:
            return Outcome(rule, Status.ERROR, error=f"parameter {gap!r} has no value in force on {snapshot.day}")
    try:
        fires = rule.fires(env) if fired is None else fired
        traced = env if fires or trace_all else None
    except Exception as error:  # fail closed
        return Outcome(rule, Status.ERROR, error=_safe(error))
    if not fires:
        return Outcome(rule, Status.NOT_APPLICABLE, traced) if traced is not None else _not_applicable(rule)
    if rule.action.destructive and env.get("legal_hold"):
        hold = subject.legal_hold
        return Outcome(rule, Status.BLOCKED, traced, legal_hold=True, legal_hold_until=hold.until if hold else None)
    granted = _active_exception(rule, subject.id, snapshot.day, exceptions)
    if granted is not None:
        return Outcome(rule, Status.BLOCKED, traced, exception=granted)
    return Outcome(rule, Status.FIRES, traced)


@cache
def _not_applicable(rule: CompiledRule) -> Outcome:
    return Outcome(rule, Status.NOT_APPLICABLE)


@cache
def _idle(rules: tuple[CompiledRule, ...]) -> tuple[Outcome, ...]:
    """The outcomes of a rule set where nothing fires (shared; callers copy before filling in)."""
    return tuple(_not_applicable(rule) for rule in rules)


def _active_exception(
    rule: CompiledRule, subject: str, day: date, exceptions: Iterable[ExceptionGrant]
) -> ExceptionGrant | None:
    if not rule.rule.exception_by:
        return None
    for grant in exceptions:
        if grant.rule == rule.id and grant.subject == subject and grant.from_ <= day <= grant.until:
            return grant
    return None


def _safe(error: Exception) -> str:
    """An error description without the values involved (they may be personal data)."""
    return f"evaluation failed ({type(error).__name__}); the subject was not acted on"
