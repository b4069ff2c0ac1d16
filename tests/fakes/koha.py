"""A small, faithful Koha REST API in-process, for the Koha adapter's tests (an httpx transport).

Written from Koha's published API description (api/v1/swagger: paths/oauth.yaml, paths/patrons.yaml,
definitions/patron.yaml, definitions/error.yaml) and the answers Koha's own API tests expect
(t/db_dependent/api/v1/patrons.t):

- `POST /api/v1/oauth/token` (form: grant_type, client_id, client_secret): 200 `{access_token, token_type: Bearer,
  expires_in}`; 400 `{"error": "Unimplemented grant type"}` when the grant is not client_credentials or the system
  preference RESTOAuth2ClientCredentials is off; 403 `{"error": "unauthorized_client"}` for unknown credentials.
- every other route wants `Authorization: Bearer <token>`: 401 `{"error": "Authentication failure."}` without a
  token or with an expired one; 403 `{"error": "Authorization failure. Missing required permission(s).",
  "required_permissions": {...}}` when the client's patron lacks the route's `x-koha-authorization`.
- `GET /patrons` (`_per_page`, `_page`), `GET|PUT|DELETE /patrons/{patron_id}`: 404 `{"error": "Patron not
  found"}`; a PUT is the whole patron (surname, library_id, category_id required; unknown or read-only properties
  are a 400 with `errors`); DELETE answers 204 with no body and moves the patron to `deleted` (Koha's
  deletedborrowers), or 409 with `error` and `error_code`: is_anonymous_patron, has_checkouts, has_debt,
  has_guarantees, is_protected, checked in that order.
- on demand: `answer_next(500, retry_after="7")` answers the next API calls with that status, `time_out_next()`
  raises a timeout; `expire_tokens()` ends every token. Every request is recorded in `requests`.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import httpx

# The properties of definitions/patron.yaml a client may send (the rest are read-only or embedded on request).
WRITABLE = frozenset(
    [
        "cardnumber",
        "surname",
        "firstname",
        "preferred_name",
        "middle_name",
        "title",
        "other_name",
        "initials",
        "pronouns",
        "street_number",
        "street_type",
        "address",
        "address2",
        "city",
        "state",
        "postal_code",
        "country",
        "email",
        "phone",
        "mobile",
        "fax",
        "secondary_email",
        "secondary_phone",
        "altaddress_street_number",
        "altaddress_street_type",
        "altaddress_address",
        "altaddress_address2",
        "altaddress_city",
        "altaddress_state",
        "altaddress_postal_code",
        "altaddress_country",
        "altaddress_email",
        "altaddress_phone",
        "date_of_birth",
        "library_id",
        "category_id",
        "date_enrolled",
        "expiry_date",
        "date_renewed",
        "incorrect_address",
        "patron_card_lost",
        "staff_notes",
        "relationship_type",
        "gender",
        "userid",
        "opac_notes",
        "altaddress_notes",
        "statistics_1",
        "statistics_2",
        "autorenew_checkouts",
        "altcontact_firstname",
        "altcontact_surname",
        "altcontact_address",
        "altcontact_address2",
        "altcontact_city",
        "altcontact_state",
        "altcontact_postal_code",
        "altcontact_country",
        "altcontact_phone",
        "sms_number",
        "sms_provider_id",
        "privacy",
        "privacy_guarantor_checkouts",
        "privacy_guarantor_fines",
        "check_previous_checkout",
        "updated_on",
        "last_seen",
        "lang",
        "login_attempts",
        "overdrive_auth_token",
        "protected",
    ]
)
READ_ONLY = frozenset({"patron_id", "restricted", "expired", "anonymized"})
REQUIRED = ("surname", "library_id", "category_id")

# x-koha-authorization of each route (borrowers: "1" is the whole borrowers module).
PERMISSIONS = {
    ("GET", "list"): "list_borrowers",
    ("GET", "one"): "list_borrowers",
    ("PUT", "one"): "1",
    ("DELETE", "one"): "delete_borrowers",
}
ALL_BORROWERS = frozenset({"1", "list_borrowers", "edit_borrowers", "delete_borrowers"})


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    bearer: str | None
    body: Any


@dataclass
class FakeKoha:
    client_id: str = "kodex-client"
    client_secret: str = "the-client-secret-42"
    client_credentials_enabled: bool = True  # the system preference RESTOAuth2ClientCredentials
    permissions: frozenset[str] = ALL_BORROWERS  # the API client's patron's borrowers subpermissions
    token_lifetime: int = 3600
    anonymous_patron: int | None = None  # the system preference AnonymousPatron
    patrons: dict[int, dict[str, Any]] = field(default_factory=dict)
    deleted: dict[int, dict[str, Any]] = field(default_factory=dict)  # deletedborrowers
    checkouts: dict[int, int] = field(default_factory=dict)
    debts: dict[int, float] = field(default_factory=dict)
    guarantors: set[int] = field(default_factory=set)
    requests: list[Recorded] = field(default_factory=list)
    tokens: set[str] = field(default_factory=set)
    _next: list[tuple[int, str | None]] = field(default_factory=list)
    _timeouts: int = 0
    _ids: int = 100

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    # -- the test's hand on it --------------------------------------------------------------------

    def add_patron(self, **fields: Any) -> int:
        self._ids += 1
        patron = {
            "surname": "Nováková",
            "firstname": "Jana",
            "cardnumber": f"C{self._ids}",
            "library_id": "CPL",
            "category_id": "PT",
            "email": "jana@example.org",
            "date_of_birth": "1990-04-01",
            "expiry_date": "2030-01-01",
            "protected": False,
            **fields,
        }
        self.patrons[self._ids] = patron
        return self._ids

    def answer_next(self, status: int, *, times: int = 1, retry_after: str | None = None) -> None:
        self._next.extend([(status, retry_after)] * times)

    def time_out_next(self, times: int = 1) -> None:
        self._timeouts += times

    def expire_tokens(self) -> None:
        self.tokens.clear()

    def calls(self, method: str | None = None) -> list[str]:
        """`METHOD path` of each API call (not the token's), in order."""
        return [
            f"{r.method} {r.path}"
            for r in self.requests
            if r.path != "/api/v1/oauth/token" and (method is None or r.method == method)
        ]

    # -- the API ----------------------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        bearer = _bearer(request)
        body = _body(request)
        self.requests.append(Recorded(request.method, path, parse_qs(request.url.query.decode()), bearer, body))
        if path == "/api/v1/oauth/token" and request.method == "POST":
            return self._token(body if isinstance(body, dict) else {})
        if self._timeouts:
            self._timeouts -= 1
            raise httpx.ReadTimeout("the fake Koha timed out", request=request)
        if bearer is None or bearer not in self.tokens:
            return _error(401, "Authentication failure.")
        if self._next:
            status, retry_after = self._next.pop(0)
            headers = {"Retry-After": retry_after} if retry_after else {}
            return _json(status, {"error": "Something went wrong, check Koha logs for details."}, headers)
        match = re.fullmatch(r"/api/v1/patrons(?:/([^/]+))?", path)
        if match is None:
            return _error(404, "Not found")
        target = "one" if match.group(1) is not None else "list"
        required = PERMISSIONS.get((request.method, target))
        if required is None:
            return _error(404, "Not found")
        if required not in self.permissions and "1" not in self.permissions:
            return _json(
                403,
                {
                    "error": "Authorization failure. Missing required permission(s).",
                    "required_permissions": {"borrowers": required},
                },
            )
        if target == "list":
            return self._list(request)
        raw_id = match.group(1) or ""
        if not raw_id.lstrip("-").isdigit():
            return _json(400, {"errors": [{"message": "Expected integer - got string.", "path": "/patron_id"}]})
        patron_id = int(raw_id)
        if patron_id not in self.patrons:
            return _error(404, "Patron not found")
        if request.method == "GET":
            return _json(200, self._as_api(patron_id))
        if request.method == "PUT":
            return self._update(patron_id, body)
        return self._delete(patron_id)

    def _token(self, form: dict[str, Any]) -> httpx.Response:
        if form.get("grant_type") != "client_credentials" or not self.client_credentials_enabled:
            return _error(400, "Unimplemented grant type")
        if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
            return _error(403, "unauthorized_client")
        token = secrets.token_urlsafe(24)
        self.tokens.add(token)
        return _json(200, {"access_token": token, "token_type": "Bearer", "expires_in": self.token_lifetime})

    def _list(self, request: httpx.Request) -> httpx.Response:
        per_page = int(request.url.params.get("_per_page", "20"))
        page = int(request.url.params.get("_page", "1"))
        ids = sorted(self.patrons)[(page - 1) * per_page : page * per_page]
        headers = {"X-Total-Count": str(len(self.patrons))}
        return _json(200, [self._as_api(i) for i in ids], headers)

    def _update(self, patron_id: int, body: Any) -> httpx.Response:
        if not isinstance(body, dict):
            return _json(400, {"errors": [{"message": "Expected object - got null.", "path": "/body"}]})
        unknown = sorted(set(body) - WRITABLE)
        if unknown:
            message = f"Properties not allowed: {', '.join(unknown)}."
            return _json(400, {"errors": [{"message": message, "path": "/body"}]})
        missing = [name for name in REQUIRED if body.get(name) is None]
        if missing:
            return _json(400, {"errors": [{"message": "Missing property.", "path": f"/body/{missing[0]}"}]})
        self.patrons[patron_id] = dict(body)
        return _json(200, self._as_api(patron_id))

    def _delete(self, patron_id: int) -> httpx.Response:
        if patron_id == self.anonymous_patron:
            return _conflict("Anonymous patron cannot be deleted", "is_anonymous_patron")
        if self.checkouts.get(patron_id):
            return _conflict("Pending checkouts prevent deletion", "has_checkouts")
        if self.debts.get(patron_id):
            return _conflict("Pending debts prevent deletion", "has_debt")
        if patron_id in self.guarantors:
            return _conflict("Patron is a guarantor and it prevents deletion", "has_guarantees")
        if self.patrons[patron_id].get("protected"):
            return _conflict("Protected patrons cannot be deleted", "is_protected")
        self.deleted[patron_id] = self.patrons.pop(patron_id)
        return httpx.Response(204)

    def _as_api(self, patron_id: int) -> dict[str, Any]:
        return {"patron_id": patron_id, **self.patrons[patron_id], "restricted": False, "anonymized": False}


def _bearer(request: httpx.Request) -> str | None:
    value = request.headers.get("Authorization", "")
    return value[len("Bearer ") :] if value.startswith("Bearer ") else None


def _body(request: httpx.Request) -> Any:
    content = request.content
    if not content:
        return None
    if request.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
        return {key: values[0] for key, values in parse_qs(content.decode()).items()}
    return json.loads(content)


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


def _error(status: int, message: str) -> httpx.Response:
    return _json(status, {"error": message})


def _conflict(message: str, code: str) -> httpx.Response:
    return _json(409, {"error": message, "error_code": code})
