"""Exceptions to a rule: revoking one, logged.

An exception arrives with the records (`kodex import`), and granting it is
logged there. Revoking it here stops it applying from the revocation on: the
row is kept, marked revoked (so importing the same record again does not
revive it; a changed record is a new grant), its subject is due for review at
the next run, and the revocation is an entry in the decision log, signed
into a checkpoint in the same transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import date
from typing import Any

from sqlalchemy import Engine, select, update

from audit.entries import exception_entry, now
from audit.log import append, checkpoint
from retention.evaluation import SubjectNotFound
from store.crypto import MasterKey
from store.schema import camera_recordings, exceptions, readers

__all__ = ["NotAuthorised", "revoke_exception"]


class NotAuthorised(Exception):
    """The role acting has no authority for this under the policy; the message names who has."""


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
        row = connection.execute(
            select(exceptions).where(exceptions.c.library == library, exceptions.c.id == exception_id)
        ).first()
        if row is None:
            raise SubjectNotFound(f"no exception {exception_id} in library {library}")
        allowed = authority(row.rule) if authority is not None else None
        if allowed is not None and actor.get("role") not in allowed:
            raise NotAuthorised(
                f"rule {row.rule} lets only {', '.join(allowed) or 'nobody'} grant or revoke exceptions, "
                f"not {actor.get('role')}"
            )
        if row.revoked_as_of is not None:
            raise SubjectNotFound(
                f"exception {exception_id} of {library} was revoked already, as of {row.revoked_as_of}"
            )
        connection.execute(
            update(exceptions).where(exceptions.c.eid == row.eid).values(revoked_as_of=as_of.isoformat())
        )
        subject_type, subject = None, None
        for table, kind in ((readers, "reader"), (camera_recordings, "camera_recording")):
            found = connection.execute(
                select(table.c.pseudonym).where(table.c.library == library, table.c.id == row.subject)
            ).first()
            if found is not None:
                subject_type, subject = kind, found.pseudonym
                connection.execute(  # the rule it suspended may apply again: decided at the next run
                    update(table).where(table.c.library == library, table.c.id == row.subject).values(next_review=None)
                )
        entry = exception_entry(
            str(uuid.uuid4()), library, granted=False, exception=row.pseudonym,
            subject_type=subject_type, subject=subject, rule=row.rule, role=row.role,
            from_=row._mapping["from"].isoformat(), until=row.until.isoformat(), as_of=as_of.isoformat(),
            actor=actor, time=now(), revision=revision,
        )  # fmt: skip
        append(connection, library, as_of, [entry])
        checkpoint(connection, library, master, now())
    return entry
