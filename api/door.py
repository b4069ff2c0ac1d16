"""The door of /v1: each request's token is checked before anything reads its body, and failed tokens are slowed.

FastAPI reads and validates a body before it calls an endpoint's dependencies, so a caller without a token would
learn from a 422 what the body should hold. Here, in front of the app, every /v1 request is authenticated first:
no token, or an unknown or revoked one, is answered 401 whatever the request; the user found is handed to the
endpoint's permission check (api.auth) in the request's state. A client address that sends too many unknown
tokens waits (api.throttle, 429 with Retry-After); each failure is logged with the address and the route
template, never the token.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from fastapi.security.utils import get_authorization_scheme_param
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Scope, Send

from kodex.api.auth import Principal
from kodex.api.problems import answer
from kodex.api.throttle import FailedTokens
from kodex.errors import TooManyFailedTokens, Unauthenticated
from kodex.services.users import authenticate

__all__ = ["Door", "routes_at"]

log = logging.getLogger("kodex.auth")


class Door:
    """ASGI middleware: authenticate every /v1 request before the app sees it."""

    def __init__(self, app: ASGIApp, failures: FailedTokens, routes: Sequence[BaseRoute]) -> None:
        """`routes`: the /v1 routers' routes, without the prefix (only to name a failure's route template)."""
        self.app, self.failures, self.routes = app, failures, list(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        address = scope["client"][0] if scope.get("client") else "unknown"
        wait = self.failures.retry_after(address)
        if wait is not None:
            await answer(TooManyFailedTokens(wait), {"Retry-After": str(wait)})(scope, receive, send)
            return
        token = _bearer(scope)
        if token is None:
            await answer(Unauthenticated("send the token as 'Authorization: Bearer <token>'"))(scope, receive, send)
            return
        work = scope["app"].state.workspace  # on the event loop: one indexed lookup (api/web.py, where work runs)
        user = authenticate(work.engine, work.master, token)
        if user is None:
            self.failures.failed(address)
            log.warning("unknown or revoked token from %s on %s %s", address, scope["method"], self._template(scope))
            await answer(Unauthenticated("the token is unknown or revoked"))(scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = Principal(user)
        await self.app(scope, receive, send)

    def _template(self, scope: Scope) -> str:
        """The route template the request would reach (never its path: path values may be card numbers)."""
        found = routes_at(self.routes, scope)
        return "/v1" + str(getattr(found[0], "path", "")) if found else "(no route)"


def routes_at(routes: Sequence[BaseRoute], scope: Scope) -> list[BaseRoute]:
    """The /v1 routes whose path template matches the request's path, whatever their method."""
    # a scope of the path alone: once routed, the request's own scope names the route it reached, which the
    # other routes' matching then defers to
    bare = {"type": "http", "path": scope["path"].removeprefix("/v1"), "root_path": "", "method": scope["method"]}
    return [route for route in routes if route.matches(bare)[0] is not Match.NONE]


def _bearer(scope: Scope) -> str | None:
    header = next((value for name, value in scope["headers"] if name == b"authorization"), None)
    if header is None:
        return None
    scheme, credentials = get_authorization_scheme_param(header.decode("latin-1"))
    return credentials if scheme.lower() == "bearer" and credentials else None
