"""Running the examples written beside each rule (`kodex policy test`).

An example states a case like a test: at `as_of` this subject gets `expect`
(the rule's action, `nothing`, or `retain` when an exception or legal hold
blocks it). Coverage is counted per rule: a rule needs a firing and a
non-firing example, and a rule with a deadline needs the deadline day itself
(not yet due) and the first moment after it (due).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from kodex.rules.actions import RETAIN
from kodex.rules.checks import NOTHING, example_record
from kodex.rules.evaluator import Outcome, Status, evaluate_subject
from kodex.rules.facts import local_day
from kodex.rules.policy import Example
from kodex.rules.records import SUBJECT, ExceptionGrant, Incident
from kodex.rules.ruleset import CompiledLibrary, CompiledRule, Ruleset

__all__ = ["Coverage", "ExampleResult", "run_examples"]


@dataclass(frozen=True, slots=True)
class ExampleResult:
    rule: str
    name: str
    expected: str
    got: str
    passed: bool


@dataclass
class Coverage:
    rule: str
    firing: int = 0
    not_firing: int = 0
    blocked: int = 0
    has_deadline: bool = False
    at_deadline: bool = False
    after_deadline: bool = False
    results: list[ExampleResult] = field(default_factory=list)

    @property
    def gaps(self) -> list[str]:
        missing = []
        if not self.firing:
            missing.append("no example where it fires")
        if not self.not_firing:
            missing.append("no example where it does not fire")
        if self.has_deadline and not self.at_deadline:
            missing.append("no example on the deadline day itself")
        if self.has_deadline and not self.after_deadline:
            missing.append("no example on the first day after the deadline")
        return missing

    @property
    def failed(self) -> list[ExampleResult]:
        return [r for r in self.results if not r.passed]


def run_examples(ruleset: Ruleset) -> list[Coverage]:
    coverage: dict[tuple[str, str], Coverage] = {}
    for library in ruleset.libraries.values():
        for rule in library.rules:
            entry = coverage.setdefault((library.id, rule.id), Coverage(rule.id))
            entry.has_deadline = entry.has_deadline or any(c.deadline for c in rule.conditions)
            for example in rule.rule.examples:
                _run(library, rule, example, entry)
    return list(coverage.values())


def _run(library: CompiledLibrary, rule: CompiledRule, example: Example, entry: Coverage) -> None:
    subject = SUBJECT.validate_json(example_record(library.id, rule.rule, example))
    grants = [
        ExceptionGrant(
            type="exception",
            library=library.id,
            id=f"example-{i}",
            subject=subject.id,
            rule=rule.id,
            role=g.role,
            granted_by="example",
            reason="example",
            **{"from": g.from_},
            until=g.until,
        )
        for i, g in enumerate(example.exceptions)
    ]
    history = [
        Incident(
            type="incident",
            library=library.id,
            id=f"example-incident-{i}",
            reader=subject.id if incident.reader == "self" else f"{subject.id}-other",
            kind=incident.kind,
            at=incident.at,
        )
        for i, incident in enumerate(example.incidents)
    ]
    own = [incident for incident in history if incident.reader == subject.id]  # counted per reader
    day = local_day(example.as_of, library.zone)
    snapshot = library.at(day)
    outcomes = evaluate_subject(snapshot, subject, example.as_of, grants, incidents=own)
    outcome = next((o for o in outcomes if o.rule is rule), None)
    got = _verdict(rule, outcome)
    passed = got == example.expect
    entry.results.append(ExampleResult(rule.id, example.name, example.expect, got, passed))
    if not passed or outcome is None:
        return
    if outcome.status is Status.FIRES:
        entry.firing += 1
    elif outcome.status is Status.BLOCKED:
        entry.blocked += 1
    else:
        entry.not_firing += 1
    for condition in outcome.conditions:
        if condition.deadline is None:
            continue
        now = example.as_of if isinstance(condition.deadline, datetime) else day
        step = timedelta(seconds=1) if isinstance(condition.deadline, datetime) else timedelta(days=1)
        if isinstance(condition.deadline, datetime) and not isinstance(now, datetime):
            now = datetime.combine(now, datetime.min.time(), library.zone)
        if now == condition.deadline and condition.holds is False:
            entry.at_deadline = True
        if now == condition.deadline + step and condition.holds is True:
            entry.after_deadline = True


def _verdict(rule: CompiledRule, outcome: Outcome | None) -> str:
    if outcome is None:
        return "rule not in force"
    return {
        Status.FIRES: rule.rule.action,
        Status.BLOCKED: RETAIN,
        Status.NOT_APPLICABLE: NOTHING,
        Status.ERROR: f"error: {outcome.error}",
    }[outcome.status]
