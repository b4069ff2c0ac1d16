"""Incident rules on durable-rules: patterns in a reader's stream of incidents.

The one module that imports durable-rules. Each library's incident rules are
compiled into one durable-rules ruleset whose name carries the policy
revision, registered once per process. A reader is evaluated by posting its
incidents into a session; the rules select the incidents that match their
pattern (kinds, window, not after `as_of`), and the count decides against
`at_least`. rules.incident_counts states the same count in plain Python; the
tests hold the two to the same results.

durable-rules' sharp edges, each handled on purpose:

- An event is consumed by the first rule that matches it. Every incident is
  therefore posted once per rule, tagged with that rule, and each rule
  matches only its own tag: no rule can miss an event another rule consumed.
- A message that matches no rule raises `MessageNotHandledException`; here
  that only means "this incident does not count for this rule".
- At most 1024 session ids may be live at once in a ruleset. Evaluations take
  a session from a pool of `SESSIONS` and give it back, so at most that many are
  live however many readers there are. (Deleting a session with `delete_state`
  after an evaluation in which no event matched aborts the 2.0.28 engine with
  "double free or corruption", measured here; so sessions are reused, not
  deleted.) Reuse is safe because every rule matches a single event and
  consumes it: no event outlives the evaluation that posted it, which
  `pending()` lets a test check.
- The host normally starts two timer threads that run queued actions later;
  `_SyncHost` starts none, and events are posted one at a time (never
  `post_batch`), so every action has run, in the caller's thread, when `post`
  returns.
- The host is process-global, and the engine keeps a session's work in
  progress (the action it is running, the events it holds) in that session's
  state: posting one event is several engine calls (assert, start the action,
  complete it), which another thread must not interleave on the same session.
  Each engine call holds the GIL (the extension never releases it), so calls on
  different sessions or rulesets cannot corrupt each other. So an evaluation
  holds its session's lock, not a global one: evaluations in several threads
  run side by side, each in its own session, and only registering a ruleset
  takes the one registration lock. Posts collect into the evaluation's own
  session, found by the session id the message carries.
- A ruleset name cannot be registered twice: names include the revision, and a
  revision already registered in this process is reused, not re-registered.
- Asking the engine for a session nothing was posted to fails (error 309, only
  in the message's text); every session remembers the rulesets it posted to,
  and `pending()` asks about those only.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from durable.engine import Host, MessageNotHandledException  # type: ignore[import-untyped]

from kodex.rules.facts import local_day
from kodex.rules.periods import Period, add_period
from kodex.rules.policy import IncidentPattern
from kodex.rules.records import Incident

__all__ = ["SESSIONS", "IncidentCount", "IncidentRules", "pending", "window_start"]

SESSIONS = 64  # sessions in the pool: evaluations at once (more wait for a free one); far below the engine's 1024


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


class _SyncHost(Host):  # type: ignore[misc]
    """A durable-rules host without its timer threads: actions run inside `post`, in the caller's thread."""

    def _run(self) -> None:
        return None


@dataclass(eq=False)
class _Session:
    """One engine session id, used by one evaluation at a time (its lock), and what that evaluation collects."""

    sid: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    posted: int = 0  # events posted so far: each gets a unique id (the engine ignores a repeated id)
    rulesets: set[str] = field(default_factory=set)  # the rulesets this session posted to (it exists in those)
    collected: dict[str, list[int]] = field(default_factory=dict)  # rule tag -> positions of the incidents matched


_HOST = _SyncHost()
_REGISTERING = threading.Lock()  # held only while a ruleset is registered
_REGISTERED: set[str] = set()
_SESSIONS = {session.sid: session for session in (_Session(f"kodex-{n}") for n in range(SESSIONS))}
_FREE: queue.LifoQueue[_Session] = queue.LifoQueue()  # last in, first out: the fewest sessions get used
for _free in _SESSIONS.values():
    _FREE.put(_free)


@contextmanager
def _a_session() -> Iterator[_Session]:
    """A free session, held (its lock) until the evaluation is done; waits while every session is in use."""
    session = _FREE.get()
    try:
        with session.lock:
            yield session
    finally:
        _FREE.put(session)


def _collect(c: Any) -> None:
    _SESSIONS[c.m["sid"]].collected.setdefault(c.m["rule"], []).append(c.m["n"])


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
        definition = {tagged.tag: _definition(tagged) for tagged in self._tags.values()}
        with _REGISTERING:
            if self.name in _REGISTERED:
                return
            _HOST.register_rulesets({self.name: definition})
            _REGISTERED.add(self.name)

    def evaluate(
        self, keys: Sequence[str], incidents: Sequence[Incident], day: date, zone: ZoneInfo
    ) -> dict[str, IncidentCount]:
        """For each rule version in `keys`, the reader's incidents that match its pattern on `day`.

        `incidents` are one reader's; each is posted once per rule, tagged with it. Safe from several threads.
        """
        tags = [self._tags[key] for key in keys]
        if not incidents or not tags:
            return {
                key: IncidentCount((), t.pattern.at_least, window_start(t.pattern, day))
                for key, t in zip(keys, tags, strict=True)
            }
        until = day.toordinal()
        windows = [window_start(t.pattern, day) for t in tags]
        days = [local_day(incident.at, zone).toordinal() for incident in incidents]
        with _a_session() as session:
            session.collected.clear()
            try:
                for tagged, since in zip(tags, windows, strict=True):
                    first = since.toordinal() if since is not None else 0
                    for n, (incident, at) in enumerate(zip(incidents, days, strict=True)):
                        session.posted += 1
                        message = {
                            "sid": session.sid,
                            "id": str(session.posted),
                            "rule": tagged.tag,
                            "n": n,
                            "kind": incident.kind,
                            "t": at,
                            "since": first,
                            "until": until,
                        }
                        with suppress(MessageNotHandledException):  # the incident does not count for this rule
                            _HOST.post(self.name, message)
                        session.rulesets.add(self.name)  # the post made the session exist in this ruleset
                found = {tagged.tag: list(session.collected.get(tagged.tag, ())) for tagged in tags}
            finally:
                session.collected.clear()
        return {
            key: IncidentCount(tuple(incidents[n] for n in sorted(found[t.tag])), t.pattern.at_least, since)
            for key, t, since in zip(keys, tags, windows, strict=True)
        }


def pending() -> list[Any]:
    """Events still held in the engine's sessions (none, between evaluations); waits for each session to be free."""
    events: list[Any] = []
    for session in _SESSIONS.values():
        with session.lock:
            for name in sorted(session.rulesets):
                events.extend(_HOST.get_pending_events(name, session.sid))
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
