"""Users as stored: found by the hash of their token, listed by library, revoked (the row stays)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Row, bindparam, select, update

from kodex.store.schema import users

__all__ = ["active_role", "add", "by_token_hash", "of_library", "revoke"]

_BY_TOKEN = select(users).where(  # built once: every request asks it
    users.c.token_hash == bindparam("token_hash"), users.c.revoked_at.is_(None)
)


def add(
    connection: Connection,
    user_id: str,
    library: str | None,
    role: str,
    *,
    name: bytes,
    token_hash: str,
    created_at: datetime,
    created_by: str | None,
    created_by_role: str,
) -> None:
    """Store a user: `name` wrapped by the master key, the token as its hash only."""
    connection.execute(
        users.insert().values(
            id=user_id, library=library, role=role, name=name, token_hash=token_hash, created_at=created_at,
            created_by=created_by, created_by_role=created_by_role,
        )
    )  # fmt: skip


def by_token_hash(connection: Connection, token_hash: str) -> Row[Any] | None:
    """The user whose token hashes to `token_hash`, unless revoked."""
    return connection.execute(_BY_TOKEN, {"token_hash": token_hash}).first()


def of_library(connection: Connection, library: str | None) -> list[Row[Any]]:
    """The users of a library (None: the operators), revoked ones included, in the order they were added."""
    query = select(users).where(_of(library)).order_by(users.c.created_at, users.c.id)
    return list(connection.execute(query).all())


def active_role(connection: Connection, library: str | None, user_id: str) -> str | None:
    """The role of the library's user `user_id`, None when there is no such user or it is revoked."""
    role = connection.execute(
        select(users.c.role).where(_of(library), users.c.id == user_id, users.c.revoked_at.is_(None))
    ).scalar()
    return None if role is None else str(role)


def revoke(connection: Connection, library: str | None, user_id: str, at: datetime) -> None:
    connection.execute(
        update(users).where(_of(library), users.c.id == user_id, users.c.revoked_at.is_(None)).values(revoked_at=at)
    )


def _of(library: str | None) -> ColumnElement[bool]:
    return users.c.library.is_(None) if library is None else users.c.library == library
