"""Who may call the service: users with one role each, authenticated by a bearer token.

A token is shown once, when the user is added, and stored only as its
SHA-256: a token is 256 random bits, so a fast hash is as safe as a slow one
and lets every request be checked with one indexed lookup. The user's name is
wrapped by the master key (it is a person's name). Every role except
`operator` (the service centre) belongs to exactly one library.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, get_args

from sqlalchemy import Engine, bindparam, select, update

from retention.errors import InvalidRequest
from retention.evaluation import SubjectNotFound
from store.crypto import MasterKey
from store.database import reading
from store.schema import libraries, users

__all__ = ["ROLES", "Role", "User", "add_user", "authenticate", "list_users", "revoke_user"]

Role = Literal["operator", "library_admin", "dpo", "director", "auditor", "librarian", "scheduler"]
ROLES: tuple[str, ...] = get_args(Role)
_PREFIX = "kodex_"  # tells a leaked kodex token apart in a secret scanner


@dataclass(frozen=True)
class User:
    id: str
    library: str | None  # None: an operator of the service centre
    role: str
    name: str
    created_at: datetime
    revoked: bool


def add_user(engine: Engine, master: MasterKey, library: str | None, role: str, name: str) -> tuple[User, str]:
    """A new user and its token (shown this once; kodex keeps only its hash)."""
    if role not in ROLES:
        raise InvalidRequest(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
    if (role == "operator") != (library is None):
        raise InvalidRequest("an operator belongs to no library; every other role belongs to one (give its id)")
    user_id = str(uuid.uuid4())
    token = _PREFIX + secrets.token_urlsafe(32)
    created = datetime.now(UTC)
    with engine.begin() as connection:
        if (
            library is not None
            and connection.execute(select(libraries.c.id).where(libraries.c.id == library)).first() is None
        ):
            raise SubjectNotFound(f"no library {library!r} in this installation")
        connection.execute(
            users.insert().values(
                id=user_id, library=library, role=role, name=master.wrap(name.encode(), _aad(user_id)),
                token_hash=_hash(token), created_at=created,
            )
        )  # fmt: skip
    return User(user_id, library, role, name, created, False), token


_BY_TOKEN = select(users).where(  # built once: every request asks it
    users.c.token_hash == bindparam("token_hash"), users.c.revoked_at.is_(None)
)


def authenticate(engine: Engine, master: MasterKey, token: str) -> User | None:
    """The user a token belongs to, or None (unknown or revoked)."""
    with reading(engine) as connection:  # every request asks: one statement, no transaction around it
        row = connection.execute(_BY_TOKEN, {"token_hash": _hash(token)}).first()
    return None if row is None else _user(row, master)


def list_users(engine: Engine, master: MasterKey, library: str | None) -> list[User]:
    """The users of a library (None: the operators), revoked ones included."""
    where = users.c.library.is_(None) if library is None else users.c.library == library
    with engine.connect() as connection:
        rows = connection.execute(select(users).where(where).order_by(users.c.created_at, users.c.id)).all()
    return [_user(row, master) for row in rows]


def revoke_user(engine: Engine, library: str | None, user_id: str) -> None:
    """Revoke a user's token at once; the row stays (who had access when)."""
    where = users.c.library.is_(None) if library is None else users.c.library == library
    with engine.begin() as connection:
        changed = connection.execute(
            update(users)
            .where(where, users.c.id == user_id, users.c.revoked_at.is_(None))
            .values(revoked_at=datetime.now(UTC))
        ).rowcount
    if not changed:
        raise SubjectNotFound("no such active user in this library")


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _aad(user_id: str) -> bytes:
    return f"user/{user_id}".encode()


def _user(row: object, master: MasterKey) -> User:
    r = row._mapping  # type: ignore[attr-defined]
    created = r["created_at"] if r["created_at"].tzinfo else r["created_at"].replace(tzinfo=UTC)
    name = master.unwrap(r["name"], _aad(r["id"])).decode()
    return User(r["id"], r["library"], r["role"], name, created, r["revoked_at"] is not None)
