"""Proposals (e.g. an exclusion, čl. 33 SVK PK): listed for, and decided by, the role the rule names.

A nightly run opens a proposal as a finding; it is never carried out there.
The rule's deciding role (`decided_by`, e.g. director) accepts or rejects it
with a reason: the decision is an entry in the decision log, the accepted
action is carried out through the action registry (retention.strategies) in the
same transaction, and a decided proposal is not proposed again.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from kodex.audit.entries import now, proposal_entry
from kodex.audit.log import append, checkpoint
from kodex.errors import InvalidRequest, NotAuthorised, SubjectNotFound
from kodex.retention.outbox import PROPOSED_AS, instruction_row
from kodex.retention.strategies import STRATEGIES, Writes
from kodex.retention.subjects import SubjectLoader
from kodex.rules.ruleset import Ruleset
from kodex.store.crypto import MasterKey
from kodex.store.database import Engine
from kodex.store.repositories import findings, readers

__all__ = ["Proposal", "decide_proposal", "list_proposals"]


@dataclass(frozen=True)
class Proposal:
    id: str  # the id of the decision (log entry) that proposed it
    subject: str | None  # the reader's record id; None once anonymised
    rule: str
    action: str
    decided_by: str | None
    status: str  # open, accepted, rejected, resolved (the rule no longer holds)
    opened_as_of: str
    closed_as_of: str | None


def list_proposals(engine: Engine, library: str, status: str | None = "open") -> list[Proposal]:
    with engine.connect() as connection:
        return [_proposal(row) for row in findings.proposals(connection, library, status)]


def decide_proposal(
    engine: Engine,
    ruleset: Ruleset,
    master: MasterKey,
    library: str,
    proposal_id: str,
    *,
    accept: bool,
    reason: str,
    actor: Mapping[str, Any],
    as_of: date,
) -> Proposal:
    """Accept or reject an open proposal as `actor` (id, role); logged, and carried out when accepted."""
    with engine.begin() as connection:
        row = findings.proposal(connection, library, proposal_id)
        if row is None:
            raise SubjectNotFound(f"no proposal {proposal_id} in library {library}")
        if row.status != "open":
            raise InvalidRequest(f"proposal {proposal_id} is {row.status} already (as of {row.closed_as_of})")
        if actor.get("role") != row.decided_by:
            raise NotAuthorised(f"rule {row.rule} lets only {row.decided_by} decide its proposals")
        versions = ruleset.library(library).versions(row.rule)
        cite = versions[-1].rule.cite if versions else None
        reader = readers.by_pseudonym(connection, row.subject)
        entry_id = str(uuid.uuid4())  # the decision behind the accepted action and its instruction
        if reader is None:
            raise InvalidRequest("the reader this proposal is about is anonymised: there is nothing to decide")
        if accept:
            subject = SubjectLoader(master, library).readers(connection, [reader])[0]
            subject.decided_on = as_of
            if STRATEGIES[row.action].changes(subject):
                writes = Writes(connection)
                STRATEGIES[row.action].apply(writes, subject, master)
                compiled = ruleset.library(library)
                writes.instruct(
                    instruction_row(
                        master,
                        compiled,
                        subject_type=row.subject_type,
                        subject_id=subject.id,
                        action=PROPOSED_AS[row.action],
                        decision_id=entry_id,
                        rule=row.rule,
                        cite=cite,
                        day=as_of,
                        at=datetime.now(UTC),
                    )
                )  # the library system excludes the reader too, told in the same transaction
                writes.flush()
        findings.close_proposal(
            connection, row.fid, status="accepted" if accept else "rejected", closed_as_of=as_of.isoformat(),
            reason=master.wrap(reason.encode(), f"proposal/{proposal_id}".encode()),
        )  # fmt: skip
        entry = proposal_entry(
            entry_id, library, proposal=proposal_id, accepted=accept, subject_type=row.subject_type,
            subject=row.subject, rule=row.rule, cite=cite, action=row.action, as_of=as_of.isoformat(),
            actor={"type": "user", "id": actor.get("id"), "role": actor.get("role")}, time=now(),
            revision=ruleset.revision,
        )  # fmt: skip
        append(connection, library, as_of, [entry])
        checkpoint(connection, library, master, now())
    return next(p for p in list_proposals(engine, library, None) if p.id == proposal_id)


def _proposal(row: Any) -> Proposal:
    return Proposal(
        row.decision_id, row.reader_id, row.rule, row.action, row.decided_by, row.status, row.opened_as_of,
        row.closed_as_of,
    )  # fmt: skip
