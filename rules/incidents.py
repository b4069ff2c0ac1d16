"""Incident rules on durable-rules: patterns in a reader's stream of incidents.

The one module that imports durable-rules (DESIGN.md, Architecture). Each
library's incident rules are compiled into one durable-rules ruleset whose
name carries the policy revision, registered once per process. A reader is
evaluated by posting its incidents into a fresh session; the rules select the
incidents that match their pattern (kinds, window, not after `as_of`), and the
count decides against `at_least`.

durable-rules' sharp edges, each handled on purpose (DESIGN.md lists them):

- An event is consumed by the first rule that matches it. Every incident is
  therefore posted once per rule, tagged with that rule, and each rule
  matches only its own tag: no rule can miss an event another rule consumed.
- A message that matches no rule raises `MessageNotHandledException`; here
  that only means "this incident does not count for this rule".
- At most 1024 session ids may be live at once. Every evaluation uses the
  same one session, so one is live however many readers there are. (Deleting
  a session with `delete_state` after an evaluation in which no event matched
  aborts the 2.0.28 engine with "double free or corruption", measured here;
  so sessions are reused, not deleted.) Reuse is safe because every rule
  matches a single event and consumes it: no event outlives the evaluation
  that posted it, which `pending()` lets a test check.
- The host normally starts two timer threads that run queued actions later;
  `_SyncHost` starts none, and events are posted one at a time (never
  `post_batch`), so every action has run when `post` returns.
- The engine is process-global and not thread-safe: every call is made under
  one lock, so concurrent callers are serialised.
- A ruleset name cannot be registered twice: names include the revision, and a
  revision already registered in this process is reused, not re-registered.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from durable.engine import Host, MessageNotHandledException  # type: ignore[import-untyped]

from kodex.rules.facts import local_day
from kodex.rules.periods import Period, add_period
from kodex.rules.policy import IncidentPattern
from kodex.rules.records import Incident

__all__ = ["IncidentCount", "IncidentRules", "count_matching", "pending", "window_start"]


class IncidentCount(NamedTuple):
    """A pattern's result for one reader: the incidents that count, and whether there are enough."""

    matched: tuple[Incident, ...]
    at_least: int
    window_from: date | None

    @property
    def holds(self) -> bool:
        return len(self.matched) >= self.at_least


def window_start(pattern: IncidentPattern, day: date) -> date | None:
    """The first day of the pattern's window ending on `day` (None: no window, all history counts)."""
    if pattern.within is None:
        return None
    return add_period(day, -Period.parse(pattern.within)) + timedelta(days=1)


def count_matching(pattern: IncidentPattern, incidents: Sequence[Incident], day: date, zone: ZoneInfo) -> IncidentCount:
    """The plain count over the history, without durable-rules: the reference its results are tested against."""
    since = window_start(pattern, day)
    kinds = set(pattern.kinds)
    matched = []
    for incident in incidents:
        at = local_day(incident.at, zone)
        assert at is not None
        if incident.kind in kinds and at <= day and (since is None or since <= at):
            matched.append(incident)
    return IncidentCount(tuple(matched), pattern.at_least, since)


class _SyncHost(Host):  # type: ignore[misc]
    """A durable-rules host without its timer threads: actions run inside `post`, in the caller's thread."""

    def _run(self) -> None:
        return None


_LOCK = threading.Lock()
_HOST: _SyncHost | None = None
_REGISTERED: set[str] = set()
_COLLECTED: dict[str, list[int]] = {}  # rule tag -> positions of the incidents it matched (filled under _LOCK)
_SESSION = "kodex"  # the one session every evaluation uses
_POSTED = 0  # events posted so far: each event gets a unique id (the engine ignores a repeated id)


def _collect(c: Any) -> None:
    _COLLECTED.setdefault(c.m["rule"], []).append(c.m["n"])


@dataclass(frozen=True)
class _Tagged:
    tag: str
    pattern: IncidentPattern


class IncidentRules:
    """One library's incident rules, compiled to a durable-rules ruleset named after the policy revision."""

    def __init__(self, revision: str, library: str, rules: Mapping[str, IncidentPattern]) -> None:
        """`rules` maps a key naming each rule version (e.g. 'kntb.x@2014-12-01') to its pattern."""
        self.name = f"kodex-{revision[:16]}-{library}"
        self._tags = {key: _Tagged(f"r{i}", pattern) for i, (key, pattern) in enumerate(rules.items())}
        if self._tags:
            self._register()

    def _register(self) -> None:
        global _HOST  # noqa: PLW0603 - the engine is process-global; so is its one host
        definition = {tagged.tag: _definition(tagged) for tagged in self._tags.values()}
        with _LOCK:
            if self.name in _REGISTERED:
                return
            if _HOST is None:
                _HOST = _SyncHost()
            _HOST.register_rulesets({self.name: definition})
            _REGISTERED.add(self.name)

    def evaluate(
        self, keys: Sequence[str], incidents: Sequence[Incident], day: date, zone: ZoneInfo
    ) -> dict[str, IncidentCount]:
        """For each rule version in `keys`, the reader's incidents that match its pattern on `day`.

        `incidents` are one reader's; each is posted once per rule, tagged with it.
        """
        tags = [self._tags[key] for key in keys]
        if not incidents or not tags:
            return {
                key: IncidentCount((), t.pattern.at_least, window_start(t.pattern, day))
                for key, t in zip(keys, tags, strict=True)
            }
        until = day.toordinal()
        windows = [window_start(t.pattern, day) for t in tags]
        days = [local_day(incident.at, zone) for incident in incidents]
        global _POSTED  # noqa: PLW0603
        with _LOCK:
            assert _HOST is not None
            _COLLECTED.clear()
            try:
                for tagged, since in zip(tags, windows, strict=True):
                    first = since.toordinal() if since is not None else 0
                    for n, (incident, at) in enumerate(zip(incidents, days, strict=True)):
                        assert at is not None
                        _POSTED += 1
                        message = {
                            "sid": _SESSION,
                            "id": str(_POSTED),
                            "rule": tagged.tag,
                            "n": n,
                            "kind": incident.kind,
                            "t": at.toordinal(),
                            "since": first,
                            "until": until,
                        }
                        with suppress(MessageNotHandledException):  # the incident does not count for this rule
                            _HOST.post(self.name, message)
                found = {tagged.tag: list(_COLLECTED.get(tagged.tag, ())) for tagged in tags}
            finally:
                _COLLECTED.clear()
        return {
            key: IncidentCount(tuple(incidents[n] for n in sorted(found[t.tag])), t.pattern.at_least, since)
            for key, t, since in zip(keys, tags, windows, strict=True)
        }


def pending() -> list[Any]:
    """Events still held in the engine's session (none, between evaluations)."""
    with _LOCK:
        if _HOST is None or not _REGISTERED:
            return []
        events: list[Any] = []
        for name in sorted(_REGISTERED):
            try:
                events.extend(_HOST.get_pending_events(name, _SESSION))
            except Exception as error:  # the engine has no session for a ruleset nothing was posted to yet
                if "309" not in str(error):
                    raise
        return events


def _definition(tagged: _Tagged) -> dict[str, Any]:
    """One durable-rules rule: this rule's tag, one of its kinds, on or after the window start, not after as_of."""
    kinds = [{"kind": kind} for kind in tagged.pattern.kinds]
    condition = {
        "$and": [
            {"rule": tagged.tag},
            {"$or": kinds} if len(kinds) > 1 else kinds[0],
            {"$gte": {"t": {"$m": "since"}}},
            {"$lte": {"t": {"$m": "until"}}},
        ]
    }
    return {"all": [{"m": condition}], "run": _collect}
