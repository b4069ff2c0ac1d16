"""A validated policy compiled for evaluation, and its snapshot at a given day.

`Ruleset.library(id).at(day)` selects the rules and parameter values in force
on that day: a later regulation adds a dated value or a new rule version, and
`as_of` picks what applied then.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from kodex.errors import BrokenInvariant
from kodex.rules.actions import ACTIONS, Action
from kodex.rules.codegen import Fires, compile_rule, compile_rules
from kodex.rules.expressions import Condition, compile_condition
from kodex.rules.facts import CAMERA_FACTS, READER_FACTS
from kodex.rules.incidents import IncidentRules
from kodex.rules.loading import LoadedPolicy
from kodex.rules.periods import Period
from kodex.rules.policy import DatedValue, IncidentPattern, Library, Rule

__all__ = ["CompiledLibrary", "CompiledRule", "LibraryAt", "Ruleset", "param_value"]

SUBJECT_FACTS: Mapping[str, Mapping[str, str]] = {"reader": READER_FACTS, "camera_recording": CAMERA_FACTS}


@dataclass(frozen=True, eq=False)  # identity: one compiled rule object per rule version
class CompiledRule:
    rule: Rule
    library: str
    action: Action
    conditions: tuple[Condition, ...]
    derive_valid_until: Condition | None
    fires: Fires  # the same conditions compiled for speed (rules.codegen)
    trees: tuple[ast.expr, ...]

    @property
    def id(self) -> str:
        return self.rule.id

    @property
    def pattern(self) -> IncidentPattern | None:
        """An incident rule's pattern (rules.incidents); None for a rule on facts."""
        return self.rule.incidents

    @property
    def incident_pattern(self) -> IncidentPattern:
        """An incident rule's pattern; asked of a rule on facts, a bug (BrokenInvariant)."""
        if self.rule.incidents is None:
            raise BrokenInvariant(f"rule {self.id} is a rule on facts: it has no incident pattern")
        return self.rule.incidents

    @property
    def version(self) -> str:
        """The rule version's key: id and first day in force."""
        return f"{self.rule.id}@{self.rule.effective_from}"


@dataclass(frozen=True)
class LibraryAt:
    """A library's rules and parameter values in force on one day."""

    library: CompiledLibrary
    day: date
    rules: Mapping[str, tuple[CompiledRule, ...]]  # rules on facts, per subject type
    incident_rules: tuple[CompiledRule, ...]  # incident rules (subject: reader), decided by rules.incidents
    fires: Mapping[str, Callable[[Mapping[str, Any]], tuple[bool, ...]]]  # per subject type, all its rules at once
    params: Mapping[str, Any]
    derive_valid_until: Condition | None
    gaps: Mapping[str, str]  # rule id -> the parameter it names that has no value in force
    param_cites: Mapping[str, str]


@dataclass
class CompiledLibrary:
    library: Library
    zone: ZoneInfo
    rules: tuple[CompiledRule, ...]
    params: Mapping[str, Mapping[date, DatedValue]]
    mandatory_when: Mapping[str, Condition]
    mandatory: frozenset[str]
    allowed: frozenset[str]  # mandatory, optional and conditionally mandatory data
    incidents: IncidentRules
    _snapshots: dict[date, LibraryAt] = field(default_factory=dict, repr=False)

    @property
    def id(self) -> str:
        return self.library.id

    def versions(self, rule_id: str) -> list[CompiledRule]:
        return [r for r in self.rules if r.id == rule_id]

    def at(self, day: date) -> LibraryAt:
        snapshot = self._snapshots.get(day)
        if snapshot is None:
            snapshot = self._snapshots[day] = self._snapshot(day)
        return snapshot

    def _snapshot(self, day: date) -> LibraryAt:
        in_force = [r for r in self.rules if r.rule.in_force(day)]
        params: dict[str, Any] = {}
        cites: dict[str, str] = {}
        for name, values in self.params.items():
            value = param_value(values, day)
            if value is not None:
                params[name] = value
                cites[name] = values[max(d for d in values if d <= day)].cite
        derive = next((r.derive_valid_until for r in in_force if r.derive_valid_until), None)
        by_subject = {s: tuple(r for r in in_force if r.rule.subject == s and r.pattern is None) for s in SUBJECT_FACTS}
        counting = tuple(r for r in in_force if r.pattern is not None)
        gaps = {
            r.id: name
            for r in in_force
            for condition in r.conditions
            for name in condition.names
            if name in self.params and name not in params
        }
        fires = {s: compile_rules([r.trees for r in rules]) for s, rules in by_subject.items()}
        return LibraryAt(self, day, by_subject, counting, fires, params, derive, gaps, cites)


class Ruleset:
    """Every library of a policy, compiled; `revision` identifies the policy."""

    def __init__(self, loaded: LoadedPolicy) -> None:
        self.revision = loaded.revision
        self.policy = loaded.policy
        self.libraries = {lib.id: _compile_library(lib, loaded.revision) for lib in loaded.policy.libraries}

    def library(self, library_id: str) -> CompiledLibrary:
        return self.libraries[library_id]


def param_value(values: Mapping[date, DatedValue], day: date) -> Any:
    """The value in force on `day` (the latest dated on or before it), converted for evaluation."""
    dates = [d for d in values if d <= day]
    if not dates:
        return None
    raw = values[max(dates)].value
    if isinstance(raw, str):
        return Period.parse(raw)
    if isinstance(raw, list):
        return tuple(raw)
    return raw


def library_params(library: Library) -> dict[str, Mapping[date, DatedValue]]:
    params: dict[str, Mapping[date, DatedValue]] = dict(library.params)
    for rule in library.rules:
        params.update(rule.params)
    return params


def _compile_library(library: Library, revision: str) -> CompiledLibrary:
    params = library_params(library)
    known_reader = frozenset(READER_FACTS) | frozenset(params)
    rules = tuple(_compile_rule(library.id, rule, frozenset(params)) for rule in library.rules)
    mandatory_when: dict[str, Condition] = {
        key: compile_condition(text, known_reader) for key, text in library.inventory.mandatory_when.items()
    }
    inventory = library.inventory
    mandatory = frozenset(inventory.mandatory)
    allowed = mandatory | frozenset(inventory.optional) | frozenset(inventory.mandatory_when)
    patterns = {r.version: r.pattern for r in rules if r.pattern is not None}
    counting = IncidentRules(revision, library.id, patterns)
    zone = ZoneInfo(library.time_zone)
    return CompiledLibrary(library, zone, rules, params, mandatory_when, mandatory, allowed, counting)


def _compile_rule(library_id: str, rule: Rule, params: frozenset[str]) -> CompiledRule:
    known = frozenset(SUBJECT_FACTS[rule.subject]) | params
    conditions = tuple(compile_condition(text, known) for text in rule.conditions)
    trees = tuple(condition.tree for condition in conditions)
    derive = rule.derive.get("valid_until")
    return CompiledRule(
        rule,
        library_id,
        ACTIONS[rule.action],
        conditions,
        compile_condition(derive, known) if derive else None,
        compile_rule(trees),
        trees,
    )
