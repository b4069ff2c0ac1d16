"""The kodex web service (`kodex serve`): the HTTP API under /v1, and GET /health for monitoring.

Thin: each endpoint parses its body (api.schemas), authorises the caller
(api.auth), calls the use cases (kodex.services, kodex.audit; a run's status
from store.repositories.run_status) and maps domain errors to HTTP statuses
through kodex.errors, the same table the CLI maps to exit codes. Errors are `Problem` bodies that say what to fix; they never echo the
request's values. The access log names the route template, never the path
(reader ids are card numbers) or a token. Bodies larger than the configured
limit are refused with 413 before they are read in full.

GET /health says whether the database answers, which policy revision is
active, and for each library when its next nightly run is due (null when the
scheduler is not running, e.g. `kodex serve --no-scheduler`) and how its last
run ended. 200 when the database answers, 503 when it does not.

Where the work runs: an endpoint declared `def` runs in a worker thread (at
most `web_threads` at once), so a long export, verification or import leaves
the event loop free. The token check, the query filters, and the two reads an
auditor or a library system makes most (a reader's explanation, a page of
decisions) are `async def` and run on the event loop itself: each is one to
three indexed queries in autocommit (store.database.reading), which cost less
than handing them to a thread and back (with threads, their GIL hand-offs made
most of the tail latency; bench/README.md). While such a query waits for
PostgreSQL the worker waits with it, so they are kept to few round trips.
Concurrency then comes from `kodex serve --workers`. The CPU-heavy endpoints
(policy validation and diff, imports, exports, verification) also hold one of
`heavy_requests` slots until their answer is sent (api.heavy), so at most that
many take the interpreter at once and the rest keep answering.

In front of the app (outermost first): the security headers (api.headers), the
body limit, the access log, the door that checks the token before anything
reads the request (api.door, api.throttle), and the NUL check. After start-up the
objects that live as long as the process (the policy, compiled rules,
statements) are moved out of the collector's sight (gc.freeze), so a full
collection does not rescan them in the middle of a request.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, Literal

import anyio.to_thread
from fastapi import Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kodex.api.console import configure_logging
from kodex.api.docs import install_docs
from kodex.api.door import Door, routes_at
from kodex.api.headers import SecurityHeaders
from kodex.api.heavy import HeavySlots
from kodex.api.problems import answer, problem
from kodex.api.query import only_declared_query
from kodex.api.routes import (
    instruction_routes,
    log_routes,
    policy_routes,
    record_routes,
    run_routes,
    subject_routes,
    tenant_routes,
)
from kodex.api.routes.common import next_run
from kodex.api.throttle import FailedTokens
from kodex.config import load_settings
from kodex.errors import failure_types
from kodex.rules.ruleset import Ruleset
from kodex.services.policy_source import load_ruleset
from kodex.services.setup import Workspace, open_workspace
from kodex.store.repositories.run_status import latest_runs

__all__ = ["Health", "LastRun", "LibraryHealth", "app_from_environment", "create_app"]

access = logging.getLogger("kodex.access")
failures = logging.getLogger("kodex.web")


class _Model(BaseModel):
    """Every body kodex takes or gives: unknown keys are refused, never ignored."""

    model_config = ConfigDict(extra="forbid")


class LastRun(_Model):
    as_of: str  # the moment the run decided for, as stored (ISO 8601)
    status: str  # running, finished or interrupted
    finished_at: datetime | None


class LibraryHealth(_Model):
    next_run: datetime | None  # in the library's time zone; null when no scheduler runs in this process
    last_run: LastRun | None  # the latest run that was not a dry run; null when none (or the database is down)


class Health(_Model):
    status: Literal["ok", "unavailable"]
    database: Literal["ok", "unreachable"]
    policy_revision: str
    libraries: dict[str, LibraryHealth]


def app_from_environment() -> FastAPI:
    """The app as a worker process of `kodex serve --workers N` builds it: the installation KODEX_* names."""
    configure_logging()
    settings = load_settings()
    return create_app(open_workspace(settings), load_ruleset(settings.policy))


def create_app(
    workspace: Workspace, ruleset: Ruleset, scheduler: Any = None, failed_tokens: FailedTokens | None = None
) -> FastAPI:
    """The web app over an opened workspace; `scheduler` (APScheduler, optional) tells the next runs.

    `failed_tokens`: the buckets that slow an address sending unknown tokens (api.throttle; default: its limits).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Requests are CPU work under one interpreter lock: a few threads finish each in turn, where forty shared
        # the CPU and all finished late (measured: bench/http_service.py). More suit many slow concurrent requests.
        anyio.to_thread.current_default_thread_limiter().total_tokens = workspace.settings.web_threads
        gc.freeze()  # what start-up built lives as long as the process: no collection needs to scan it again
        yield

    app = FastAPI(
        lifespan=lifespan,
        docs_url=None,  # served by api.docs, with their scripts from kodex itself
        redoc_url=None,
        dependencies=[Depends(only_declared_query)],
        title="kodex",
        summary="Library regulations and GDPR retention as executable, cited rules.",
        version="1",
        description=(
            "Authenticate with `Authorization: Bearer <token>` (tokens from `kodex users add`). Every role but "
            "`operator` acts only in its own library. Errors are `Problem` bodies: `title`, `detail` (what to fix), "
            "and `errors` per line or field."
        ),
    )
    app.state.workspace, app.state.ruleset, app.state.scheduler = workspace, ruleset, scheduler
    app.state.heavy = HeavySlots(workspace.settings.heavy_requests)
    modules = (tenant_routes, record_routes, subject_routes, run_routes, log_routes, policy_routes, instruction_routes)
    for module in modules:
        app.include_router(module.router, prefix="/v1")
    routes = [route for module in modules for route in module.router.routes]  # without the /v1 prefix
    _handle_errors(app, routes)
    _state_the_policy(app, ruleset)
    app.add_middleware(_RefuseNul)
    app.add_middleware(
        Door, failures=failed_tokens or FailedTokens(), routes=[route for m in modules for route in m.router.routes]
    )
    app.add_middleware(_AccessLog)
    app.add_middleware(_BodyLimit, limit=workspace.settings.max_request_mb * 1024 * 1024)
    app.add_middleware(SecurityHeaders)  # outermost: every answer carries them, a 413 or a 500 too
    install_docs(app)

    @app.get("/health", response_model=Health, responses={503: {"model": Health, "description": "database down"}})
    def health(response: Response) -> Health:
        last = _last_runs(workspace, list(ruleset.libraries))
        reachable = last is not None
        if not reachable:
            response.status_code = 503
        libraries = {
            library: LibraryHealth(next_run=next_run(scheduler, library), last_run=(last or {}).get(library))
            for library in ruleset.libraries
        }
        return Health(
            status="ok" if reachable else "unavailable",
            database="ok" if reachable else "unreachable",
            policy_revision=ruleset.revision,
            libraries=libraries,
        )

    return app


def _state_the_policy(app: FastAPI, ruleset: Ruleset | None) -> None:
    """The OpenAPI schema names the libraries the active policy has: the only ids a library can be onboarded with."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()  # FastAPI's, cached in app.openapi_schema, which this completes once
            if ruleset is not None:
                library_id = schema["components"]["schemas"]["LibraryIn"]["properties"]["id"]
                library_id["enum"] = sorted(ruleset.libraries)
        return app.openapi_schema or generate()

    app.openapi = openapi  # type: ignore[method-assign]


# -- errors: one mapping (kodex.errors), bodies that never echo what was sent --------------------------------------


def _handle_errors(app: FastAPI, routes: list[BaseRoute]) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        errors = []
        for e in error.errors():
            loc = [str(part) for part in e.get("loc", ())]
            message = e.get("msg", "").removeprefix("Value error, ")
            if e.get("type") == "extra_forbidden":  # the unknown key itself is not echoed: it may be a value
                loc, message = loc[:-1], "unknown field (the body's keys are listed in the OpenAPI schema)"
            errors.append({"field": ".".join(loc), "message": message})
        first = errors[0] if errors else {"field": "", "message": "invalid request"}
        return problem(422, "invalid request", f"{first['field']}: {first['message']}", errors)

    @app.exception_handler(StarletteHTTPException)
    async def http(request: Request, error: StarletteHTTPException) -> JSONResponse:
        if error.status_code == 400:  # FastAPI could not read the body (not UTF-8, say): a 422 like any bad body
            return problem(422, "invalid request", "body: could not be read; send JSON encoded in UTF-8")
        title = {404: "not found", 405: "method not allowed", 413: "request too large"}.get(
            error.status_code, "http error"
        )
        headers = error.headers
        if error.status_code == 405 and request.url.path.startswith("/v1/"):  # RFC 9110, 15.5.6: every method the
            # path takes in Allow; FastAPI has a route per method, and names only the first one's
            found = routes_at(routes, request.scope)
            headers = {
                "Allow": ", ".join(sorted({method for route in found for method in getattr(route, "methods", ())}))
            }
        return problem(error.status_code, title, str(error.detail), headers=headers)

    async def domain(request: Request, error: Exception) -> JSONResponse:
        return answer(error)

    for kind in failure_types():
        app.add_exception_handler(kind, domain)


class _AccessLog:
    """One line per request: method, route template, status, milliseconds. No path values, query or headers.

    An unexpected error (a bug) is answered 500 and logged by its type only: its message may hold a value.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except _TooLarge:
            status = 413  # answered by _BodyLimit, outside
            raise
        except Exception as error:
            failures.exception("unexpected %s on %s %s", type(error).__name__, scope["method"], _template(scope))
            if status == 500:  # nothing sent yet
                await problem(500, "internal error", "kodex failed to answer; the error is logged without its data")(
                    scope, receive, send
                )
        finally:
            route = _template(scope)
            access.info("%s %s %d %.1fms", scope["method"], route, status, (time.perf_counter() - started) * 1000)


def _template(scope: Scope) -> str:
    """The matched route's template with its prefix (FastAPI keeps an included router's route without it)."""
    route = getattr(scope.get("route"), "path", None)
    if not isinstance(route, str):
        return "(no route)"
    return route if not scope["path"].startswith("/v1/") or route.startswith("/v1/") else "/v1" + route


class _RefuseNul:
    """A path or query holding U+0000 names nothing kodex can store (PostgreSQL text cannot hold it): 404 or 422."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and "\x00" in scope["path"]:
            await problem(404, "not found", "the path holds the NUL character (U+0000)")(scope, receive, send)
        elif scope["type"] == "http" and b"%00" in scope.get("query_string", b""):
            detail = "a query parameter holds the NUL character (U+0000)"
            await problem(422, "invalid request", detail)(scope, receive, send)
        else:
            await self.app(scope, receive, send)


class _BodyLimit:
    """Refuse a body over `limit` bytes with 413, by its Content-Length or as it streams in.

    A streamed body that passes the limit raises _TooLarge from `receive`: an HTTPException, so an endpoint that
    reads the body itself is answered 413 by the app's handler, and FastAPI's own body parsing passes it on as it is.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(send)
            return
        seen = 0

        async def receiving() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge(self.limit)
            return message

        try:
            await self.app(scope, receiving, send)
        except _TooLarge as error:  # raised where no handler answered it
            await self._refuse(send, error)

    async def _refuse(self, send: Send, error: _TooLarge | None = None) -> None:
        too_large = error or _TooLarge(self.limit)
        response = problem(413, "request too large", too_large.detail)
        await response({"type": "http"}, _nothing, send)


class _TooLarge(StarletteHTTPException):
    def __init__(self, limit: int) -> None:
        mb = limit // (1024 * 1024)
        super().__init__(413, f"the body is over {mb} MiB; send an import in parts (each part is atomic)")


async def _nothing() -> Message:
    return {"type": "http.disconnect"}


def _last_runs(workspace: Workspace, libraries: list[str]) -> dict[str, LastRun] | None:
    """Each library's latest non-dry run; None when the database does not answer (or is not kodex's)."""
    latest = latest_runs(workspace.engine, libraries)
    if latest is None:
        return None
    return {
        library: LastRun(as_of=run.as_of, status=run.status, finished_at=run.finished_at)
        for library, run in latest.items()
    }
