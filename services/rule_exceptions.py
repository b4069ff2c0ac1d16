"""Exceptions to a rule: granting one, revoking one, listing them; every grant and revocation logged.

An exception arrives with the records (`kodex import`), or a director grants
it through the service (`grant_exception`), which imports it as one record:
the same validation (the rule allows exceptions — a rule about camera
recordings allows none —, the role is one the policy empowers, it ends no later
than the library's `exceptions.max_period` after its first day, a reader rule's
exception names no camera recording), the same storage, and the grant logged
naming the user. Revoking it here stops it applying from the revocation on (never
before the exception's first day): the
row is kept, marked revoked (so importing the same record again does not
revive it; a changed record is a new grant), its subject is due for review at
the next run, and the revocation is an entry in the decision log, signed
into a checkpoint in the same transaction.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import date
from typing import Any

from kodex.audit.entries import exception_entry, now
from kodex.audit.log import append, checkpoint
from kodex.errors import InvalidRequest, NotAuthorised, SubjectNotFound
from kodex.rules.ruleset import Ruleset
from kodex.services.importing import import_records
from kodex.services.tenants import require_agreement
from kodex.store.codec import exception_text
from kodex.store.crypto import MasterKey
from kodex.store.database import Engine
from kodex.store.repositories import exceptions, readers, recordings
from kodex.store.repositories.records import SUBJECTS

__all__ = ["exception_authority", "grant_exception", "list_exceptions", "revoke_exception"]


def grant_exception(
    engine: Engine,
    ruleset: Ruleset,
    master: MasterKey,
    library: str,
    grant: Mapping[str, Any],
    actor: Mapping[str, Any],
    today: date,
) -> dict[str, Any]:
    """Grant an exception (`grant`: id (optional), subject, rule, reason, from (default today), until).

    The actor's role is the authority it is granted under and its name the grantor. Returns the stored exception.
    """
    exception_id = grant.get("id") or f"X-{uuid.uuid4().hex[:12]}"
    allowed = exception_authority(ruleset, library)(grant["rule"])
    if allowed and actor["role"] not in allowed:  # a rule that allows none is refused by the import's validation
        raise NotAuthorised(
            f"rule {grant['rule']} lets only {', '.join(allowed)} grant exceptions, not {actor['role']}"
        )
    with engine.connect() as connection:
        require_agreement(connection, [library])  # a library without one holds no subject to grant for
        if exceptions.exists(connection, library, exception_id):
            raise InvalidRequest("an exception with this id exists already; grant under a new id")
        subject = grant["subject"]
        known = readers.is_live(connection, library, subject) or recordings.exists(connection, library, subject)
    if not known:
        raise SubjectNotFound(f"library {library!r} holds no reader or camera recording with this id")
    record = {
        "type": "exception", "library": library, "id": exception_id, "subject": grant["subject"],
        "rule": grant["rule"], "role": actor["role"], "granted_by": actor["name"], "reason": grant["reason"],
        "from": (grant.get("from") or today).isoformat(), "until": grant["until"].isoformat(),
    }  # fmt: skip
    line = json.dumps(record, ensure_ascii=False)
    logged_actor = {"type": "user", "id": actor["id"], "role": actor["role"]}
    import_records(lambda: iter([line]), engine, ruleset, master, today, actor=logged_actor, only_library=library)
    found = list_exceptions(engine, master, library, exception_id)
    if not found:  # the import left it out: the subject was anonymised or purged meanwhile
        raise SubjectNotFound(f"library {library!r} holds no reader or camera recording with this id")
    return found[0]


def exception_authority(ruleset: Ruleset, library: str) -> Callable[[str], tuple[str, ...]]:
    """For a rule of `library`, the roles the policy lets grant (and so revoke) exceptions to it; () for none."""

    def roles(rule_id: str) -> tuple[str, ...]:
        versions = ruleset.library(library).versions(rule_id)
        return tuple(versions[-1].rule.exception_by) if versions else ()

    return roles


def list_exceptions(
    engine: Engine, master: MasterKey, library: str, exception_id: str | None = None
) -> list[dict[str, Any]]:
    """The library's exceptions (revoked ones too), oldest first; with `exception_id`, that one only.

    The grantor's name and the reason are kept wrapped by the master key; they are unwrapped here for the dpo.
    """
    with engine.connect() as connection:
        rows = exceptions.of_library(connection, library, exception_id)
    return [
        {
            "id": row.id, "subject": row.subject, "rule": row.rule, "role": row.role,
            "granted_by": exception_text(master, row, "granted_by"), "reason": exception_text(master, row, "reason"),
            "from": row._mapping["from"], "until": row.until,
            "revoked_as_of": row.revoked_as_of,
        }
        for row in rows
    ]  # fmt: skip


def revoke_exception(
    engine: Engine,
    master: MasterKey,
    library: str,
    exception_id: str,
    as_of: date,
    actor: Mapping[str, Any],
    revision: str | None = None,
    authority: Callable[[str], Sequence[str]] | None = None,
) -> dict[str, Any]:
    """Revoke exception `exception_id` of `library` as of `as_of`; the log entry written.

    `authority(rule)` gives the roles that may grant (and so revoke) exceptions to a rule: the actor's role
    must be one of them.
    """
    with engine.begin() as connection:
        row = exceptions.find(connection, library, exception_id)
        if row is None:
            raise SubjectNotFound(f"library {library} has no exception with this id")
        allowed = authority(row.rule) if authority is not None else None
        if allowed is not None and actor.get("role") not in allowed:
            raise NotAuthorised(
                f"rule {row.rule} lets only {', '.join(allowed) or 'nobody'} grant or revoke exceptions, "
                f"not {actor.get('role')}"
            )
        if row.revoked_as_of is not None:
            raise SubjectNotFound(f"this exception of {library} was revoked already, as of {row.revoked_as_of}")
        first = row._mapping["from"]
        if as_of < first:  # backdated before the grant: it would undo what the exception lawfully held back
            raise InvalidRequest(
                f"a revocation cannot take effect before the exception's first day ({first}); "
                "revoke it as of that day or later (as of that day, it never applies)"
            )
        exceptions.revoke(connection, row.eid, as_of.isoformat())
        subject_type, subject = None, None
        for kind, subjects in SUBJECTS.items():
            found = subjects.pseudonym(connection, library, row.subject)
            if found is not None:
                subject_type, subject = kind, found
                # the rule it suspended may apply again: decided at the next run
                subjects.review_at_next_run(connection, library, row.subject)
        entry = exception_entry(
            str(uuid.uuid4()), library, granted=False, exception=row.pseudonym,
            subject_type=subject_type, subject=subject, rule=row.rule, role=row.role,
            from_=row._mapping["from"].isoformat(), until=row.until.isoformat(), as_of=as_of.isoformat(),
            actor=actor, time=now(), revision=revision,
        )  # fmt: skip
        append(connection, library, as_of, [entry])
        checkpoint(connection, library, master, now())
    return entry
