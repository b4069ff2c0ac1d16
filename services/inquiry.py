"""Questions about one stored reader: where it stands, and why (explained in plain words).

Both read the reader as a nightly run would (retention.subjects: the record
decrypted, with its exceptions, incidents, requests and holds) and change
nothing. The status carries no personal data; the explanation names the
facts the rules compared.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from kodex.errors import SubjectNotFound
from kodex.retention.subjects import load_reader
from kodex.rules.decision import build_decision
from kodex.rules.evaluator import evaluate_subject
from kodex.rules.explain import explain
from kodex.rules.facts import local_day
from kodex.rules.ruleset import Ruleset
from kodex.store.crypto import MasterKey
from kodex.store.database import Engine
from kodex.store.repositories import findings, holds, readers, requests

__all__ = ["Explanation", "ReaderStatus", "explain_stored", "reader_status"]


@dataclass(frozen=True)
class ReaderStatus:
    id: str
    state: str  # active, lapsed, anonymised
    services_blocked: bool
    excluded_as_of: str | None
    next_review: date | None
    reviewed_as_of: str | None
    open_findings: list[dict[str, Any]]
    open_requests: list[dict[str, Any]]
    kodex_hold_until: date | None
    kodex_hold: bool


@dataclass(frozen=True)
class Explanation:
    reader: str
    library: str
    as_of: str
    policy_revision: str
    lines: list[str]
    decisions: list[dict[str, Any]]


def reader_status(engine: Engine, library: str, reader_id: str) -> ReaderStatus:
    with engine.connect() as connection:
        row = readers.find(connection, library, reader_id)
        if row is None:
            raise SubjectNotFound(f"library {library!r} holds no reader with this id")
        open_findings = []
        if row.pseudonym is not None:
            open_findings = [
                {"rule": f.rule, "action": f.action, "effect": f.effect, "opened_as_of": f.opened_as_of}
                for f in findings.open_about(connection, library, "reader", row.pseudonym)
            ]
        open_requests = [
            {"id": r.id, "kind": r.kind, "received_on": r.received_on, "due_on": r.due_on, "instruction": r.instruction}
            for r in requests.open_of_reader(connection, library, reader_id)
        ]
        hold = holds.find(connection, library, "reader", reader_id)
    return ReaderStatus(
        row.id, row.state, row.blocked, row.excluded_as_of, row.next_review, row.reviewed_as_of, open_findings,
        open_requests, hold.until if hold else None, hold is not None,
    )  # fmt: skip


def explain_stored(
    engine: Engine, ruleset: Ruleset, master: MasterKey, library: str, reader_id: str, as_of: date | datetime
) -> Explanation:
    """Rule by rule, what applies to the stored reader as of `as_of`, and why."""
    subject = load_reader(engine, master, library, reader_id)
    if subject.state == "anonymised":
        raise SubjectNotFound("this reader is anonymised: kodex holds no personal data to decide on")
    if subject.failure is not None:
        raise SubjectNotFound("the reader's stored record could not be read; the next run records the error")
    compiled = ruleset.library(library)
    day = local_day(as_of, compiled.zone)
    snapshot = compiled.at(day)
    outcomes = evaluate_subject(
        snapshot, subject.record, as_of, subject.grants, trace_all=True, incidents=subject.incidents
    )
    lines = explain(reader_id, library, as_of, ruleset.revision, outcomes, snapshot.param_cites)
    decisions = [build_decision(o, subject.record, as_of, ruleset.revision) for o in outcomes]
    return Explanation(reader_id, library, as_of.isoformat(), ruleset.revision, lines, decisions)
