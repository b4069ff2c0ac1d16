"""Libraries as tenants: onboarding, their data-processing agreements (GDPR Art. 28), their nights done."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, Row, select, update

from kodex.store.schema import agreements, libraries

__all__ = [
    "add", "agreement", "agreements_of", "every", "find", "ids", "is_known", "mark_onboarded",
    "record_agreement", "with_agreement",
]  # fmt: skip


def find(connection: Connection, library: str) -> Row[Any] | None:
    return connection.execute(select(libraries).where(libraries.c.id == library)).first()


def is_known(connection: Connection, library: str) -> bool:
    return connection.execute(select(libraries.c.id).where(libraries.c.id == library)).first() is not None


def ids(connection: Connection) -> list[str]:
    return list(connection.execute(select(libraries.c.id)).scalars())


def every(connection: Connection) -> list[Row[Any]]:
    return list(connection.execute(select(libraries).order_by(libraries.c.id)).all())


def add(connection: Connection, library: str, name: str, time_zone: str, onboarded_at: datetime) -> None:
    connection.execute(libraries.insert().values(id=library, name=name, time_zone=time_zone, onboarded_at=onboarded_at))


def mark_onboarded(connection: Connection, library: str, at: datetime) -> None:
    connection.execute(update(libraries).where(libraries.c.id == library).values(onboarded_at=at))


def agreement(connection: Connection, library: str) -> Row[Any] | None:
    """The agreement in force (`agreement_signed_on`, `agreement_reference`: None if none), None for no library."""
    query = select(libraries.c.agreement_signed_on, libraries.c.agreement_reference).where(libraries.c.id == library)
    return connection.execute(query).first()


def record_agreement(
    connection: Connection,
    library: str,
    signed_on: date,
    reference: str,
    *,
    recorded_at: datetime,
    recorded_by: str | None,
    recorded_by_role: str,
) -> None:
    """Make the agreement the one in force, and keep it in the library's history of agreements."""
    connection.execute(
        update(libraries)
        .where(libraries.c.id == library)
        .values(agreement_signed_on=signed_on, agreement_reference=reference)
    )
    connection.execute(
        agreements.insert().values(
            library=library, signed_on=signed_on, reference=reference, recorded_at=recorded_at,
            recorded_by=recorded_by, recorded_by_role=recorded_by_role,
        )
    )  # fmt: skip


def agreements_of(connection: Connection, library: str) -> list[Row[Any]]:
    """Every agreement recorded for the library, newest first."""
    query = select(agreements).where(agreements.c.library == library).order_by(agreements.c.aid.desc())
    return list(connection.execute(query).all())


def with_agreement(connection: Connection, library_ids: Iterable[str]) -> set[str]:
    """Of `library_ids`, the libraries with a data-processing agreement recorded."""
    rows = connection.execute(
        select(libraries.c.id, libraries.c.agreement_signed_on).where(libraries.c.id.in_(list(library_ids)))
    ).all()
    return {row.id for row in rows if row.agreement_signed_on is not None}
