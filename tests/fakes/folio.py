"""A small FOLIO behind an Okapi, written from FOLIO's published API description, for the FOLIO adapter's tests.

What it answers, as the RAML and schemas of mod-login, mod-users, mod-circulation, mod-feesfines and mod-users-bl
describe it:
- `POST /authn/login-with-expiry` (201, the `folioAccessToken` and `folioRefreshToken` cookies) and the classic
  `POST /authn/login` (201, the `x-okapi-token` header); wrong credentials: 422 with the code
  `wrong.username.or.wrong.password.or.account.blocked`. `classic_login_only` answers 404 for the newer one.
- every call needs `X-Okapi-Tenant` (400 without, or with another tenant) and, but for the logins, a token it issued
  (401 "Invalid token"); a permission the login user lacks: 403 "Access requires permission: …".
- `GET /users`, `GET|PUT /users/{id}` (PUT: 204; 404 text/plain for an unknown user; 400 text/plain when the body's
  id differs; 422 with RMB's validation errors when `personal.lastName` is missing or `personal` holds a field
  the schema lacks).
- `POST /loan-anonymization/by-user/{userId}`: detaches the user's closed loans (their `userId` removed): 200
  `{"anonymizedLoans": [...], "errors": []}`. A closed loan with fees/fines is kept: by default the whole call is
  refused with 422 `haveAssociatedFeesAndFines` (the RAML's description, `loanIds` a JSON string); with
  `fees_in_200` it answers as mod-circulation's code does, 200 with the kept loans under `errors`.
- `GET|POST /manualblocks` (CQL `userId==<id>` only), `DELETE /manualblocks/{id}` (204, 404).
- `GET /bl-users/_self?include=perms&expandPermissions=true`: the login user's permissions.
- `fail(method, path_prefix, status)` makes the next matching call answer that status (e.g. 500, 429 with
  Retry-After); `expire_tokens()` forgets every token (the next call answers 401).
Every request is recorded in `requests` (method, path, query, JSON body, headers) for the tests to assert on.
"""

from __future__ import annotations

import json
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse

__all__ = ["ALL_PERMISSIONS", "FakeFolio", "Recorded"]

ALL_PERMISSIONS = (
    "users.collection.get",
    "users.item.get",
    "users.item.put",
    "circulation.loans.collection.anonymize.user.post",
    "manualblocks.collection.get",
    "manualblocks.item.post",
    "manualblocks.item.delete",
)
LOGIN_FAILED = "wrong.username.or.wrong.password.or.account.blocked"  # mod-login's code
PERSONAL_FIELDS = {  # mod-users' userdata.json: personal, additionalProperties false, lastName required
    "pronouns", "lastName", "firstName", "middleName", "preferredFirstName", "email", "phone", "mobilePhone",
    "dateOfBirth", "addresses", "preferredContactTypeId", "preferredContactTypeIds", "profilePictureLink",
}  # fmt: skip


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    headers: dict[str, str]


@dataclass
class FakeFolio:
    tenant: str = "diku"
    username: str = "kodex-robot"
    password: str = "s3cret-Pa55word"
    permissions: set[str] = field(default_factory=lambda: set(ALL_PERMISSIONS))
    classic_login_only: bool = False
    fees_in_200: bool = False
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    loans: list[dict[str, Any]] = field(default_factory=list)
    accounts: list[dict[str, Any]] = field(default_factory=list)  # fees/fines, each with its loanId
    manualblocks: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    tokens: set[str] = field(default_factory=set)
    _failures: list[tuple[str, str, int, dict[str, str]]] = field(default_factory=list)

    # -- what a test sets up and reads ---------------------------------------------------------------------

    def add_user(self, **fields: Any) -> str:
        user_id = fields.pop("id", None) or str(uuid.uuid4())
        self.users[user_id] = {"id": user_id, "active": True, "type": "patron", **fields}
        return user_id

    def add_loan(self, user_id: str, *, closed: bool = True, with_fee: bool = False) -> str:
        loan_id = str(uuid.uuid4())
        status = "Closed" if closed else "Open"
        self.loans.append({"id": loan_id, "userId": user_id, "itemId": str(uuid.uuid4()), "status": {"name": status}})
        if with_fee:
            self.accounts.append({"id": str(uuid.uuid4()), "userId": user_id, "loanId": loan_id,
                                  "amount": 5.0, "status": {"name": "Open"}})  # fmt: skip
        return loan_id

    def fail(self, method: str, path_prefix: str, status: int, headers: dict[str, str] | None = None) -> None:
        """The next call of `method` on a path starting with `path_prefix` answers `status`."""
        self._failures.append((method, path_prefix, status, headers or {}))

    def expire_tokens(self) -> None:
        self.tokens.clear()

    def calls(self, method: str | None = None, path_prefix: str = "") -> list[Recorded]:
        return [r for r in self.requests if (method is None or r.method == method) and r.path.startswith(path_prefix)]

    # -- serving -------------------------------------------------------------------------------------------

    @contextmanager
    def running(self) -> Iterator[str]:
        """Serve on a free local port in a thread; yields the base URL (what the config's `url` names)."""
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        server = uvicorn.Server(uvicorn.Config(self.app(), host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("the fake FOLIO did not start")
            time.sleep(0.02)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            thread.join(10)

    def app(self) -> FastAPI:
        app = FastAPI()
        fake = self

        @app.middleware("http")
        async def okapi(request: Request, call_next: Any) -> Response:
            raw = await request.body()
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode(errors="replace")
            fake.requests.append(Recorded(request.method, request.url.path, dict(request.query_params), body,
                                          {k.lower(): v for k, v in request.headers.items()}))  # fmt: skip
            for i, (method, prefix, status, headers) in enumerate(fake._failures):
                if request.method == method and request.url.path.startswith(prefix):
                    del fake._failures[i]
                    return PlainTextResponse("Internal server error, contact administrator", status, headers)
            tenant = request.headers.get("x-okapi-tenant")
            if tenant != fake.tenant:
                return PlainTextResponse("Missing Tenant" if tenant is None else f"No such Tenant {tenant}", 400)
            if not request.url.path.startswith("/authn/"):
                if request.headers.get("x-okapi-token") not in fake.tokens:
                    return PlainTextResponse("Invalid token", 401)
                needed = _permission(request.method, request.url.path)
                if needed and needed not in fake.permissions:
                    return PlainTextResponse(f"Access requires permission: {needed}", 403)
            response: Response = await call_next(request)
            return response

        def credentials_ok(body: Any) -> bool:
            return isinstance(body, dict) and (body.get("username"), body.get("password")) == (
                fake.username, fake.password,
            )  # fmt: skip

        def login_refused() -> JSONResponse:
            error = {"message": "Wrong username or wrong password or account blocked", "type": "error",
                     "code": LOGIN_FAILED, "parameters": []}  # fmt: skip
            return JSONResponse({"errors": [error]}, 422)

        @app.post("/authn/login-with-expiry")
        async def login_with_expiry(request: Request) -> Response:
            if fake.classic_login_only:
                return PlainTextResponse("Not found", 404)
            if not credentials_ok(await _body(request)):
                return login_refused()
            token = fake._issue()
            answer = JSONResponse({"accessTokenExpiration": "2030-01-01T00:10:00Z",
                                   "refreshTokenExpiration": "2030-01-08T00:00:00Z"}, 201)  # fmt: skip
            answer.set_cookie("folioAccessToken", token, max_age=600, httponly=True, samesite="strict")
            answer.set_cookie("folioRefreshToken", secrets.token_hex(8), path="/authn", httponly=True)
            return answer

        @app.post("/authn/login")
        async def login(request: Request) -> Response:
            if not credentials_ok(await _body(request)):
                return login_refused()
            token = fake._issue()
            return JSONResponse({"okapiToken": token}, 201, headers={"x-okapi-token": token})

        @app.get("/users")
        async def users(limit: int = 10) -> Response:
            found = list(fake.users.values())
            return JSONResponse({"users": found[:limit], "totalRecords": len(found)})

        @app.get("/users/{user_id}")
        async def user(user_id: str) -> Response:
            if user_id not in fake.users:
                return PlainTextResponse("User not found", 404)
            return JSONResponse(fake.users[user_id])

        @app.put("/users/{user_id}")
        async def put_user(user_id: str, request: Request) -> Response:
            body = await _body(request)
            if not isinstance(body, dict):
                return PlainTextResponse("Bad request", 400)
            problems = _user_problems(body)
            if problems:
                return JSONResponse({"errors": problems}, 422)
            if body.get("id") != user_id:
                return PlainTextResponse("You cannot change the value of the id field", 400)
            if user_id not in fake.users:
                return PlainTextResponse(user_id, 404)
            fake.users[user_id] = body
            return Response(status_code=204)

        @app.post("/loan-anonymization/by-user/{user_id}")
        async def anonymize_loans(user_id: str) -> Response:
            closed = [
                loan for loan in fake.loans if loan.get("userId") == user_id and loan["status"]["name"] == "Closed"
            ]
            with_fees = {a["loanId"] for a in fake.accounts}
            kept = [loan["id"] for loan in closed if loan["id"] in with_fees]
            errors = [{"message": "haveAssociatedFeesAndFines", "parameters": [{"key": "loanIds",
                       "value": json.dumps(kept)}]}] if kept else []  # fmt: skip
            if kept and not fake.fees_in_200:
                return JSONResponse({"errors": errors}, 422)
            anonymised = []
            for loan in closed:
                if loan["id"] not in with_fees:
                    loan.pop("userId")
                    anonymised.append(loan["id"])
            return JSONResponse({"anonymizedLoans": anonymised, "errors": errors})

        @app.get("/manualblocks")
        async def manualblocks(query: str | None = None, limit: int = 10) -> Response:
            found = list(fake.manualblocks.values())
            if query is not None:
                if not query.startswith("userId=="):
                    return PlainTextResponse("this fake takes userId==<id> only", 400)
                found = [b for b in found if b["userId"] == query.removeprefix("userId==").strip('"')]
            return JSONResponse({"manualblocks": found[:limit], "totalRecords": len(found)})

        @app.post("/manualblocks")
        async def post_manualblock(request: Request) -> Response:
            body = await _body(request)
            missing = [key for key in ("desc", "userId") if not isinstance(body, dict) or not body.get(key)]
            if missing:
                return JSONResponse({"errors": [{"message": "must not be null", "type": "1", "code": "-1",
                                                 "parameters": [{"key": missing[0], "value": "null"}]}]}, 422)  # fmt: skip
            block = {"id": str(uuid.uuid4()), **body}
            fake.manualblocks[block["id"]] = block
            return JSONResponse(block, 201, headers={"Location": f"/manualblocks/{block['id']}"})

        @app.delete("/manualblocks/{block_id}")
        async def delete_manualblock(block_id: str) -> Response:
            if fake.manualblocks.pop(block_id, None) is None:
                return PlainTextResponse("Not found", 404)
            return Response(status_code=204)

        @app.get("/bl-users/_self")
        async def self_user() -> Response:
            me = {"id": "00000000-0000-4000-8000-000000000001", "username": fake.username}
            return JSONResponse(
                {"user": me, "permissions": {"userId": me["id"], "permissions": sorted(fake.permissions)}}
            )

        return app

    def _issue(self) -> str:
        token = f"eyJ{secrets.token_urlsafe(24)}"
        self.tokens.add(token)
        return token


def _permission(method: str, path: str) -> str | None:
    """The permission the module descriptors require for the call."""
    if path == "/users":
        return "users.collection.get"
    if path.startswith("/users/"):
        return {"GET": "users.item.get", "PUT": "users.item.put"}.get(method)
    if path.startswith("/loan-anonymization/by-user/"):
        return "circulation.loans.collection.anonymize.user.post"
    if path == "/manualblocks":
        return {"GET": "manualblocks.collection.get", "POST": "manualblocks.item.post"}.get(method)
    if path.startswith("/manualblocks/"):
        return {"GET": "manualblocks.item.get", "DELETE": "manualblocks.item.delete"}.get(method)
    return None


def _user_problems(user: dict[str, Any]) -> list[dict[str, Any]]:
    """RMB's 422 validation errors for a user against userdata.json (the parts the adapter touches)."""
    personal = user.get("personal")
    if personal is None:
        return []
    problems = [{"message": "must not be null", "type": "1", "code": "-1",
                 "parameters": [{"key": "personal.lastName", "value": "null"}]}] if not personal.get("lastName") else []  # fmt: skip
    problems += [{"message": f"Unrecognized field \"{key}\"", "type": "1", "code": "-1",
                  "parameters": [{"key": f"personal.{key}", "value": "..."}]} for key in personal if key not in PERSONAL_FIELDS]  # fmt: skip
    return problems


async def _body(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None
