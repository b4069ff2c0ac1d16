"""Who may call the service: users with one role each, authenticated by a bearer token.

A token is shown once, when the user is added, and stored only as its
SHA-256: a token is 256 random bits, so a fast hash is as safe as a slow one
and lets every request be checked with one indexed lookup. The user's name is
wrapped by the master key (it is a person's name). Every role except
`operator` (the service centre) belongs to exactly one library.

Issuing and revoking a token is a decision-log entry (`user_added`,
`user_revoked`: the user's random id and role, and who did it), committed with
the change. A library user's entry is in its library's log; an operator acts
in every library, so an operator's entry is in the log of every library the
installation has at the time (the first operator, created before any library,
is in none: `kodex users list` shows it). Each user also records who issued its
token; a dpo or director token issued by a library's admin is flagged for the
operator (`User.flagged`): those roles read personal data.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, get_args

from kodex.audit.entries import CLI, now, user_entry
from kodex.audit.log import append
from kodex.errors import InvalidRequest, SubjectNotFound
from kodex.store.crypto import MasterKey
from kodex.store.database import Connection, Engine, reading
from kodex.store.repositories import libraries, users

__all__ = ["FLAGGED_ROLES", "ROLES", "Role", "User", "add_user", "authenticate", "list_users", "revoke_user"]

Role = Literal["operator", "library_admin", "dpo", "director", "auditor", "librarian", "scheduler"]
ROLES: tuple[str, ...] = get_args(Role)
_PREFIX = "kodex_"  # tells a leaked kodex token apart in a secret scanner
FLAGGED_ROLES = frozenset({"dpo", "director"})  # read personal data: issued by an admin, the operator is shown it


@dataclass(frozen=True)
class User:
    id: str
    library: str | None  # None: an operator of the service centre
    role: str
    name: str
    created_at: datetime
    revoked: bool
    created_by: str | None = None  # the issuer's user id (None: the command line, or before this was recorded)
    created_by_role: str | None = None  # the issuer's role, "cli", or None (issued before this was recorded)

    @property
    def flagged(self) -> bool:
        """A dpo or director token a library's admin issued: the operator should know (they read personal data)."""
        return self.role in FLAGGED_ROLES and self.created_by_role == "library_admin"


def add_user(
    engine: Engine,
    master: MasterKey,
    library: str | None,
    role: str,
    name: str,
    actor: Mapping[str, Any] = CLI,
) -> tuple[User, str]:
    """A new user and its token (shown this once; kodex keeps only its hash), logged as issued by `actor`."""
    if role not in ROLES:
        raise InvalidRequest(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
    if (role == "operator") != (library is None):
        raise InvalidRequest("an operator belongs to no library; every other role belongs to one (give its id)")
    user_id = str(uuid.uuid4())
    token = _PREFIX + secrets.token_urlsafe(32)
    created = datetime.now(UTC)
    with engine.begin() as connection:
        if library is not None and not libraries.is_known(connection, library):
            raise SubjectNotFound(f"no library {library!r} in this installation")
        issuer, issuer_role = actor["id"], actor["role"] or actor["type"]
        users.add(
            connection, user_id, library, role, name=master.wrap(name.encode(), _aad(user_id)),
            token_hash=_hash(token), created_at=created, created_by=issuer, created_by_role=issuer_role,
        )  # fmt: skip
        _log(connection, library, added=True, user=user_id, role=role, actor=actor)
    return User(user_id, library, role, name, created, False, issuer, issuer_role), token


def authenticate(engine: Engine, master: MasterKey, token: str) -> User | None:
    """The user a token belongs to, or None (unknown or revoked)."""
    with reading(engine) as connection:  # every request asks: one statement, no transaction around it
        row = users.by_token_hash(connection, _hash(token))
    return None if row is None else _user(row, master)


def list_users(engine: Engine, master: MasterKey, library: str | None) -> list[User]:
    """The users of a library (None: the operators), revoked ones included."""
    with engine.connect() as connection:
        rows = users.of_library(connection, library)
    return [_user(row, master) for row in rows]


def revoke_user(
    engine: Engine,
    library: str | None,
    user_id: str,
    actor: Mapping[str, Any] = CLI,
    may_revoke: Callable[[str], None] | None = None,
) -> None:
    """Revoke a user's token at once; the row stays (who had access when). `may_revoke(role)` raises if `actor`
    may not revoke a user of that role (api.auth decides)."""
    with engine.begin() as connection:
        role = users.active_role(connection, library, user_id)
        if role is None:
            raise SubjectNotFound("no such active user in this library")
        if may_revoke is not None:
            may_revoke(role)
        users.revoke(connection, library, user_id, datetime.now(UTC))
        _log(connection, library, added=False, user=user_id, role=role, actor=actor)


def _log(
    connection: Connection, library: str | None, *, added: bool, user: str, role: str, actor: Mapping[str, Any]
) -> None:
    """The entry in the user's library's log; an operator's in every library's (it acts in every one)."""
    names = [library] if library is not None else libraries.ids(connection)
    time = now()
    for name in sorted(names):
        entry = user_entry(str(uuid.uuid4()), name, added=added, user=user, role=role, actor=actor, time=time)
        append(connection, name, datetime.now(UTC).date(), [entry])


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _aad(user_id: str) -> bytes:
    return f"user/{user_id}".encode()


def _user(row: object, master: MasterKey) -> User:
    r = row._mapping  # type: ignore[attr-defined]
    created = r["created_at"] if r["created_at"].tzinfo else r["created_at"].replace(tzinfo=UTC)
    name = master.unwrap(r["name"], _aad(r["id"])).decode()
    revoked = r["revoked_at"] is not None
    return User(r["id"], r["library"], r["role"], name, created, revoked, r["created_by"], r["created_by_role"])
