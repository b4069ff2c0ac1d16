"""Libraries as tenants, onboarded as the ZÍSKEJ service centre does it (seed 000).

The service centre's operator creates a library (one the policy has rules
for) and its first admin, and records the library's data-processing agreement
(GDPR Art. 28: date signed and reference). Until that agreement is recorded,
no personal data is accepted for the library: imports, registered camera
recordings and exceptions are refused with `NoAgreement`.

Replacing an agreement keeps the old one: every agreement recorded is a row
of `agreements` (when and by whom) and a decision-log entry
(`agreement_recorded`: the day signed and the SHA-256 of the reference, which
is free text). Recording the agreement in force again changes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from kodex.audit.entries import CLI, agreement_entry, now
from kodex.audit.log import append
from kodex.errors import NoAgreement, NotInPolicy, SubjectNotFound
from kodex.rules.ruleset import Ruleset
from kodex.store.database import Connection, Engine
from kodex.store.repositories import libraries

__all__ = ["Agreement", "LibraryInfo", "RecordedAgreement", "agreement_history",
           "library_info", "list_libraries", "onboard", "record_agreement", "require_agreement"]  # fmt: skip


@dataclass(frozen=True)
class Agreement:
    signed_on: date
    reference: str


@dataclass(frozen=True)
class RecordedAgreement:
    """One agreement of a library's history: when it was recorded and by whom (None: before the history was kept)."""

    signed_on: date
    reference: str
    recorded_at: datetime | None
    recorded_by: str | None  # a user's id
    recorded_by_role: str | None  # that user's role, or "cli"
    current: bool


@dataclass(frozen=True)
class LibraryInfo:
    id: str
    name: str
    time_zone: str
    agreement: Agreement | None
    onboarded_at: datetime | None


def onboard(
    engine: Engine,
    ruleset: Ruleset,
    library: str,
    agreement: Agreement | None = None,
    actor: Mapping[str, Any] = CLI,
) -> LibraryInfo:
    """Make `library` a tenant of this installation (again: a no-op), with its agreement when given."""
    if library not in ruleset.libraries:
        raise NotInPolicy(
            f"the active policy (revision {ruleset.revision[:12]}) has no library {library!r}; "
            "add its regulation's rules to policies.yaml first"
        )
    compiled = ruleset.library(library).library
    with engine.begin() as connection:
        row = libraries.find(connection, library)
        if row is None:
            libraries.add(connection, library, compiled.name, compiled.time_zone, datetime.now(UTC))
        elif row.onboarded_at is None:
            libraries.mark_onboarded(connection, library, datetime.now(UTC))
    if agreement is not None:
        record_agreement(engine, library, agreement, actor)
    return library_info(engine, library)


def record_agreement(engine: Engine, library: str, agreement: Agreement, actor: Mapping[str, Any] = CLI) -> LibraryInfo:
    """Record (or replace, keeping the old one) the library's data-processing agreement; from then on it takes
    personal data. The agreement in force recorded again changes nothing."""
    reference = agreement.reference.strip()
    with engine.begin() as connection:
        row = libraries.agreement(connection, library)
        if row is None:
            raise SubjectNotFound(f"no library {library!r} in this installation")
        if (row.agreement_signed_on, row.agreement_reference) != (agreement.signed_on, reference):
            libraries.record_agreement(
                connection, library, agreement.signed_on, reference, recorded_at=datetime.now(UTC),
                recorded_by=actor["id"], recorded_by_role=actor["role"] or actor["type"],
            )  # fmt: skip
            time = now()
            entry = agreement_entry(
                str(uuid.uuid4()), library, signed_on=agreement.signed_on.isoformat(), reference=reference,
                actor=actor, time=time,
            )  # fmt: skip
            append(connection, library, datetime.now(UTC).date(), [entry])
    return library_info(engine, library)


def agreement_history(engine: Engine, library: str) -> list[RecordedAgreement]:
    """Every agreement recorded for the library, newest first (the first is the one in force)."""
    with engine.connect() as connection:
        if not libraries.is_known(connection, library):
            raise SubjectNotFound(f"no library {library!r} in this installation")
        rows = libraries.agreements_of(connection, library)
    return [
        RecordedAgreement(
            row.signed_on, row.reference, _utc(row.recorded_at), row.recorded_by, row.recorded_by_role, number == 0
        )
        for number, row in enumerate(rows)
    ]


def require_agreement(connection: Connection, library_ids: Iterable[str]) -> None:
    """Refuse personal data for any library in `library_ids` without a recorded agreement."""
    wanted = sorted(set(library_ids))
    if not wanted:
        return
    agreed = libraries.with_agreement(connection, wanted)
    missing = [library for library in wanted if library not in agreed]
    if missing:
        raise NoAgreement(
            f"no data-processing agreement is recorded for {', '.join(missing)}: no personal data is accepted "
            "until the service centre records it (`kodex libraries agreement`, or PUT /v1/libraries/{id}/agreement)"
        )


def library_info(engine: Engine, library: str) -> LibraryInfo:
    with engine.connect() as connection:
        row = libraries.find(connection, library)
    if row is None:
        raise SubjectNotFound(f"no library {library!r} in this installation")
    return _info(row)


def list_libraries(engine: Engine) -> list[LibraryInfo]:
    with engine.connect() as connection:
        return [_info(row) for row in libraries.every(connection)]


def _info(row: Any) -> LibraryInfo:
    agreement = Agreement(row.agreement_signed_on, row.agreement_reference or "") if row.agreement_signed_on else None
    return LibraryInfo(row.id, row.name, row.time_zone, agreement, _utc(row.onboarded_at))


def _utc(moment: datetime | None) -> datetime | None:
    if moment is not None and moment.tzinfo is None:  # SQLite gives UTC moments back without their zone
        return moment.replace(tzinfo=UTC)
    return moment
