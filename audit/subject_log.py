"""A subject's entries in the decision log: what an Art. 15 copy shows of the decisions about a reader."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, select

from kodex.store.schema import decision_log

__all__ = ["entries_about"]


def entries_about(connection: Connection, library: str, subject_type: str, pseudonym: str) -> list[dict[str, Any]]:
    """The library's entries about the subject, in log order, read in the caller's transaction.

    The log names a subject by its pseudonym only, never by its record id.
    """
    statement = (
        select(decision_log.c.entry)
        .where(
            decision_log.c.library == library,
            decision_log.c.subject_type == subject_type,
            decision_log.c.subject == pseudonym,
        )
        .order_by(decision_log.c.idx)
    )
    return [json.loads(row.entry) for row in connection.execute(statement)]
