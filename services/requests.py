"""Data-subject requests: erasure and loan-history erasure (GDPR Art. 17), answered within a month (Art. 12(3)).

A request sets what the reader asked for; the rules decide what happens. It
is stored with the day it was received and the day it is due (received +
the library's `request_response_period`, a dated value in policies.yaml),
and laid over the reader's record at every run (retention.subjects) until the
action it asks for is applied. Then it waits, still open, for that action's
instruction to the library system (`instruction`): it is done when the
library system has done it (services.instructions.record_outcome). The answer to a new request
says what the rules decide about it today, and when the nightly run will act.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from kodex.errors import InvalidRequest, SubjectNotFound
from kodex.retention.subjects import REQUEST_ACTIONS, REQUEST_FIELDS, load_reader
from kodex.rules.evaluator import Status, evaluate_subject
from kodex.rules.periods import Period, add_period
from kodex.rules.ruleset import Ruleset
from kodex.store.crypto import MasterKey
from kodex.store.database import Engine
from kodex.store.repositories import readers
from kodex.store.repositories import requests as stored_requests
from kodex.store.repositories.records import SUBJECTS

__all__ = ["KINDS", "Forecast", "Request", "due_requests", "file_request", "list_requests", "outlook"]

KINDS = tuple(REQUEST_FIELDS)
_ACTIONS = REQUEST_ACTIONS
_FACTS = {"erasure": "erasure_requested", "loan_history_erasure": "history_erasure_requested"}


@dataclass(frozen=True)
class Request:
    id: str
    library: str
    reader: str | None  # None once the reader is anonymised
    kind: str
    received_on: date
    due_on: date
    status: str
    done_at: datetime | None
    instruction: str | None = None  # the instruction to the library system it waits for (open) or waited for (done)


@dataclass(frozen=True)
class Forecast:
    """What the rules decide about the request today: per rule that acts on it, its status and reasons."""

    rule: str
    action: str
    cite: str
    status: str  # due (the next run acts), blocked (an exception or legal hold keeps the data), not_due
    reasons: list[dict[str, Any]]


def file_request(
    engine: Engine, ruleset: Ruleset, master: MasterKey, library: str, reader_id: str, kind: str, received_on: date
) -> tuple[Request, list[Forecast]]:
    """Record a request (once per reader and kind while open) and say what the rules decide about it."""
    if kind not in KINDS:
        raise InvalidRequest(f"unknown request kind {kind!r}; kinds: {', '.join(KINDS)}")
    compiled = ruleset.library(library)
    period = compiled.at(received_on).params.get("request_response_period")
    if period is None:
        raise InvalidRequest(f"the policy gives library {library} no request_response_period in force on {received_on}")
    due_on = add_period(received_on, Period.parse(str(period)))
    with engine.begin() as connection:
        state = readers.state_of(connection, library, reader_id)
        if state is None:
            raise SubjectNotFound(f"library {library!r} holds no reader with this id")
        if state == "anonymised":
            raise InvalidRequest("this reader is anonymised already: kodex holds no personal data to erase")
        open_one = stored_requests.open_one(connection, library, reader_id, kind)
        if open_one is not None:
            request = _request(open_one)
        else:
            request = Request(str(uuid.uuid4()), library, reader_id, kind, received_on, due_on, "open", None)
            stored_requests.add(
                connection, request.id, library, reader_id, kind, received_on=received_on, due_on=due_on
            )
        SUBJECTS["reader"].review_at_next_run(connection, library, reader_id)
    return request, forecast(engine, ruleset, master, library, reader_id, kind, received_on)


def forecast(
    engine: Engine, ruleset: Ruleset, master: MasterKey, library: str, reader_id: str, kind: str, as_of: date
) -> list[Forecast]:
    subject = load_reader(engine, master, library, reader_id)
    if subject.failure is not None:
        raise InvalidRequest("the reader's stored record could not be read; the next run records the error")
    snapshot = ruleset.library(library).at(as_of)
    outcomes = evaluate_subject(snapshot, subject.record, as_of, subject.grants, incidents=subject.incidents)
    found = []
    for outcome in outcomes:
        rule = outcome.rule.rule
        if rule.action != _ACTIONS[kind] or not any(_FACTS[kind] in c.names for c in outcome.rule.conditions):
            continue
        status = {Status.FIRES: "due", Status.BLOCKED: "blocked"}.get(outcome.status, "not_due")
        reasons = [{"condition": c.text, "holds": c.holds} for c in outcome.conditions if c.holds is not None]
        found.append(Forecast(rule.id, rule.action, rule.cite, status, reasons))
    return found


def outlook(forecasts: list[Forecast]) -> str:
    """The answer to a request in one sentence: what the next run does about it, or why it does not act."""
    statuses = {f.status for f in forecasts}
    if not forecasts:
        return (
            "no rule of this library's policy acts on this kind of request: kodex does not carry it out; "
            "it stays open and on the due list until the dpo answers the reader"
        )
    if "due" in statuses:
        return "the next nightly run carries it out"
    if "blocked" in statuses:
        return "not carried out: an exception or a legal hold keeps the data; the dpo answers the reader"
    return "not carried out now: the rule's other conditions do not hold (e.g. obligations); see its reasons"


def list_requests(engine: Engine, library: str, status: str | None = None) -> list[Request]:
    with engine.connect() as connection:
        return [_request(row) for row in stored_requests.of_library(connection, library, status)]


def due_requests(engine: Engine, library: str, today: date, within_days: int = 7) -> list[Request]:
    """Open requests overdue or due within `within_days` of `today`, the most urgent first."""
    with engine.connect() as connection:
        return [
            _request(row) for row in stored_requests.due_by(connection, library, today + timedelta(days=within_days))
        ]


def _request(row: Any) -> Request:
    done = row.done_at
    if done is not None and done.tzinfo is None:
        done = done.replace(tzinfo=UTC)
    return Request(
        row.id, row.library, row.reader, row.kind, row.received_on, row.due_on, row.status, done, row.instruction
    )
