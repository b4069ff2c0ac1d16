"""Who may do what: bearer tokens, roles, and the one table of permissions every endpoint is checked against.

A request names its token in `Authorization: Bearer …`; an unknown or revoked
token is a 401 (api.door checks it before anything reads the request's body). Each endpoint names its operation; the operation's roles say
who may call it (403 otherwise). Every role except `operator` acts only in its
own library: a path naming another library is refused with the same 403
whether that library exists or not, so a token learns nothing about others.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from kodex.errors import Denied, SubjectNotFound, Unauthenticated
from kodex.services.users import ROLES, User

__all__ = [
    "ISSUES",
    "PERMISSIONS",
    "Principal",
    "check_may_issue",
    "for_library",
    "for_service",
]

_ALL = frozenset(ROLES)
_LIBRARY_ROLES = _ALL - {"operator"}

PERMISSIONS: dict[str, frozenset[str]] = {
    "libraries.create": frozenset({"operator"}),
    "libraries.list": frozenset({"operator"}),
    "libraries.read": frozenset({"operator", "library_admin", "dpo", "director", "auditor"}),
    "libraries.agreement": frozenset({"operator"}),
    "libraries.agreements": frozenset({"operator", "library_admin"}),  # the history of its agreements
    "users.create": frozenset({"operator", "library_admin"}),
    "users.list": frozenset({"operator", "library_admin"}),
    "users.revoke": frozenset({"operator", "library_admin"}),
    "records.import": frozenset({"librarian", "library_admin"}),
    "readers.read": frozenset({"dpo", "director", "librarian"}),
    "readers.explain": frozenset({"dpo", "director", "librarian"}),
    "readers.access_copy": frozenset({"dpo"}),
    "requests.create": frozenset({"dpo", "librarian"}),
    "requests.list": frozenset({"dpo"}),
    "holds.set": frozenset({"dpo"}),
    "holds.release": frozenset({"dpo"}),
    "exceptions.list": frozenset({"dpo", "director"}),
    "exceptions.grant": frozenset({"director"}),
    "exceptions.revoke": frozenset({"director"}),
    "proposals.list": frozenset({"dpo", "director"}),
    "proposals.decide": frozenset({"director"}),
    "runs.start": frozenset({"scheduler", "library_admin", "dpo"}),  # dpo: dry runs only
    "runs.read": frozenset({"scheduler", "library_admin", "dpo", "director", "auditor"}),
    "runs.plan": frozenset({"dpo", "director"}),  # the plan names readers by their record id
    "decisions.read": frozenset({"auditor", "dpo"}),
    "audit.verify": frozenset({"auditor", "dpo"}),
    "audit.sign": frozenset({"auditor"}),
    "audit.keys": _ALL,
    "camera.register": frozenset({"librarian"}),
    "policy.read": _ALL,
    "policy.validate": frozenset({"operator", "dpo"}),
    "policy.diff": frozenset({"dpo"}),
    # the instruction feed: the library system's integration (librarian) and the dpo read and answer it; only the
    # library's admin says where it is pushed (the signing secret is shown once, to them)
    "instructions.read": frozenset({"librarian", "dpo"}),
    "instructions.outcome": frozenset({"librarian", "dpo"}),
    "webhooks.set": frozenset({"library_admin"}),
}


# Which roles a caller may issue (and revoke) tokens of, over HTTP, in the library the path names. Operators are
# created only at the server's command line (`kodex users add --role operator`); a library's first admin by the
# operator (POST /v1/libraries). An admin may not make another admin: only the operator hands out that power.
ISSUES: dict[str, frozenset[str]] = {
    "operator": _LIBRARY_ROLES,
    "library_admin": frozenset({"dpo", "director", "auditor", "librarian", "scheduler"}),
}


@dataclass(frozen=True)
class Principal:
    user: User

    @property
    def actor(self) -> dict[str, str | None]:
        """How the decision log names the caller: by user id and role, never by name."""
        return {"type": "user", "id": self.user.id, "role": self.user.role}


_bearer = HTTPBearer(auto_error=False, description="A token from `kodex users add` or POST …/users.")


async def _principal(  # no I/O: api.door authenticated the token before the app read anything of the request
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    principal = getattr(request.state, "principal", None)
    if not isinstance(principal, Principal):  # only where api.door does not stand in front (it does for all of /v1)
        raise Unauthenticated("send the token as 'Authorization: Bearer <token>'")
    return principal


def for_service(operation: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency: the caller, allowed `operation` on the service as a whole."""
    roles = PERMISSIONS[operation]

    async def check(principal: Annotated[Principal, Depends(_principal)]) -> Principal:  # no I/O: no thread
        _check_role(principal, operation, roles)
        return principal

    return check


def for_library(operation: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency: the caller, allowed `operation` in the library the path names."""
    roles = PERMISSIONS[operation]

    async def check(  # no I/O: run on the event loop, not handed to a worker thread as a sync dependency would be
        request: Request,
        principal: Annotated[Principal, Depends(_principal)],
        library: Annotated[str, Path(description="The library's id (e.g. svkpk).", max_length=64)],
    ) -> Principal:
        _check_role(principal, operation, roles)
        if principal.user.role != "operator" and principal.user.library != library:
            raise Denied("this token acts for another library")
        if library not in request.app.state.ruleset.libraries:  # only an operator gets this far for it
            raise SubjectNotFound(f"no library {library!r} in this installation")
        return principal

    return check


def check_may_issue(principal: Principal, role: str) -> None:
    """Refuse (Denied) a token of `role` the caller may not issue or revoke (ISSUES)."""
    allowed = ISSUES.get(principal.user.role, frozenset())
    if role not in allowed:
        may = ", ".join(sorted(allowed)) or "none"
        raise Denied(f"role {principal.user.role} may not issue or revoke {role} tokens (it may: {may})")


def _check_role(principal: Principal, operation: str, roles: frozenset[str]) -> None:
    if principal.user.role not in roles:
        raise Denied(f"role {principal.user.role} may not do this ({operation}: {', '.join(sorted(roles))})")
