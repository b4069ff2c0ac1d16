"""`kodex export`: everything kodex holds about one reader, decrypted — the copy owed under GDPR Art. 15.

Every read of a copy is a decision-log entry (`access_copy_read`: who, the reader's pseudonym, when), committed
in the same transaction that reads the copy: no copy leaves kodex unrecorded.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, select

from kodex.audit.entries import CLI, access_copy_entry, now
from kodex.audit.log import append
from kodex.audit.subject_log import entries_about
from kodex.errors import SubjectNotFound
from kodex.rules.decision import json_value
from kodex.store.codec import exception_text, reader_record
from kodex.store.crypto import MasterKey
from kodex.store.schema import exceptions, findings, incidents, loans, readers

__all__ = ["access_copy"]


def access_copy(
    engine: Engine, master: MasterKey, library: str, reader_id: str, actor: Mapping[str, Any] = CLI
) -> dict[str, Any]:
    """The reader's Art. 15 copy, its reading logged as by `actor`."""
    with engine.begin() as connection:
        row = connection.execute(select(readers).where(readers.c.library == library, readers.c.id == reader_id)).first()
        if row is None:
            raise SubjectNotFound(f"library {library!r} holds no reader with this id")
        record = reader_record(row.facts, row.wrapped_key, row.sealed, master)
        copy: dict[str, Any] = {
            "library": library,
            "reader": record,
            "state": row.state,
            "services_blocked": row.blocked,
            "anonymised": row.state == "anonymised",
            "loans": [
                _plain(r._mapping, drop={"lid", "digest"})
                for r in connection.execute(
                    select(loans).where(loans.c.library == library, loans.c.reader == reader_id).order_by(loans.c.lid)
                )
            ],
            "incidents": [
                _plain(r._mapping, drop={"iid", "digest", "pseudonym"})
                for r in connection.execute(
                    select(incidents)
                    .where(incidents.c.library == library, incidents.c.reader == reader_id)
                    .order_by(incidents.c.iid)
                )
            ],
            "exceptions": [  # the grantor is another person: left out; the reason is about the reader
                {
                    **_plain(r._mapping, drop={"eid", "digest", "granted_by", "pseudonym", "reason"}),
                    "reason": exception_text(master, r, "reason"),
                }
                for r in connection.execute(
                    select(exceptions)
                    .where(exceptions.c.library == library, exceptions.c.subject == reader_id)
                    .order_by(exceptions.c.eid)
                )
            ],
            "decisions": [],
            "findings": [],
        }
        if row.pseudonym is not None:
            copy["decisions"] = entries_about(connection, library, "reader", row.pseudonym)
            copy["findings"] = [
                _plain(r._mapping, drop={"fid", "subject", "subject_type", "decision_id"})
                for r in connection.execute(
                    select(findings).where(
                        findings.c.library == library,
                        findings.c.subject_type == "reader",
                        findings.c.subject == row.pseudonym,
                    )
                )
            ]
        time = now()
        read = access_copy_entry(str(uuid.uuid4()), library, subject=row.pseudonym, actor=actor, time=time)
        append(connection, library, datetime.now(UTC).date(), [read])
    return copy


def _plain(mapping: Any, drop: set[str]) -> dict[str, Any]:
    return {k: json_value(v) for k, v in mapping.items() if k not in drop}
