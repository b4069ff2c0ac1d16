"""The FOLIO adapter: carries instructions out through Okapi, in mod-users, mod-circulation and mod-feesfines.

Written from FOLIO's published API (the RAML and JSON schemas of mod-users, mod-circulation, mod-feesfines and
mod-login; the permission names from their module descriptors):

- login: `POST /authn/login-with-expiry` (the access token in the `folioAccessToken` cookie), or the classic
  `POST /authn/login` (the token in the `x-okapi-token` header) where the newer one is absent (404); every call sends
  `X-Okapi-Tenant` and `X-Okapi-Token`. Logged in lazily; on a 401 it logs in again once and repeats the call.
- the instruction's `subject_id` is the FOLIO user's id (the UUID of `/users/{id}`), never a barcode or username.
- anonymise: `GET /users/{id}`; `POST /loan-anonymization/by-user/{id}` (detach the closed loans; FOLIO keeps the
  ones with fees/fines and says `haveAssociatedFeesAndFines` → rejected, the user left as it was); then
  `PUT /users/{id}` with the personal block replaced by a neutral surname (schema: `personal.lastName` is required)
  and username, barcode and externalSystemId removed; patron group, departments, dates, type stay (statistics).
- erase_loan_history: the loan anonymisation alone. registration_expired: `PUT /users/{id}` with `active=false` and
  an `expirationDate` no later than now. block_services, exclude: a manual block (`POST /manualblocks`: borrowing,
  renewals and requests) whose description names kodex and the rule; lift_block deletes kodex's service blocks
  (not an exclusion's). erase_guardian_data (FOLIO has no guardian fields) and purge stay for the work list.

Answers: 2xx → done; 404 of the user → rejected `not_found`; 400/422 → rejected with FOLIO's code (`errors[0].code`,
else its message key, else `http_<status>`); 401 after a fresh login, 403 → failed `not_authorised`; 429, 5xx and
transport errors → retry (after Retry-After when given). Logs and messages name the step and the status, never a
body, the password or the token.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from kodex.clock import now
from kodex.config import FolioConnector
from kodex.services.connectors import Carried, Check
from kodex.services.instructions import Instruction

__all__ = ["ANONYMISED_LAST_NAME", "BLOCK_PREFIX", "CAPABLE", "EXCLUSION_PREFIX", "PERMISSIONS", "FolioAdapter"]

log = logging.getLogger(__name__)

CAPABLE = frozenset(
    {"anonymise", "erase_loan_history", "block_services", "lift_block", "registration_expired", "exclude"}
)
ANONYMISED_LAST_NAME = "anonymised"  # personal.lastName is required by mod-users' userdata.json
BLOCK_PREFIX = "kodex: services blocked"  # a manual block's desc: lift_block deletes these
EXCLUSION_PREFIX = "kodex: excluded from services"  # an accepted exclusion's block: it stays

# The FOLIO permissions the adapter's user needs (module descriptors of mod-users, mod-circulation, mod-feesfines)
PERMISSIONS = (
    "users.collection.get",
    "users.item.get",
    "users.item.put",
    "circulation.loans.collection.anonymize.user.post",
    "manualblocks.collection.get",
    "manualblocks.item.post",
    "manualblocks.item.delete",
)

_KEPT_PERSONAL = ("preferredContactTypeId", "preferredContactTypeIds")  # no data about the person
_REMOVED_TOP = ("username", "barcode", "externalSystemId", "metadata")  # metadata: FOLIO sets it again
_CODE = re.compile(r"^[A-Za-z0-9_.:\-]{1,100}$")  # services.instructions.CODE: what may be logged
_PAGE = 1000


class _Stop(Exception):
    """A call's answer that settles the instruction (not authorised, retry later)."""

    def __init__(self, carried: Carried) -> None:
        super().__init__(carried.detail)
        self.carried = carried


@dataclass(frozen=True)
class _Step:
    name: str  # e.g. "PUT /users/{id}": what a message names (never the id)
    method: str
    path: str


class FolioAdapter:
    """One FOLIO tenant's adapter (services.connectors.Connector)."""

    system = "folio"

    def __init__(self, config: FolioConnector, *, transport: httpx.BaseTransport | None = None) -> None:
        self.config = config
        self._http = httpx.Client(
            base_url=config.url, timeout=config.timeout_s, transport=transport, follow_redirects=False
        )
        self._token: str | None = None
        # httpcore's DEBUG trace writes every response's headers, FOLIO's token (x-okapi-token, Set-Cookie) among them
        logging.getLogger("httpcore").setLevel(max(logging.INFO, logging.getLogger("httpcore").getEffectiveLevel()))

    def can(self, action: str) -> bool:
        return action in CAPABLE

    def close(self) -> None:
        self._http.close()

    # -- carrying out ------------------------------------------------------------------------------------------

    def carry_out(self, instruction: Instruction) -> Carried:
        if not self.can(instruction.action) or instruction.subject_type != "reader":
            return Carried("failed", code="not_supported", detail=f"FOLIO does not carry out {instruction.action}")
        user_id = instruction.subject_id
        carry: dict[str, Callable[[Instruction, dict[str, Any]], Carried]] = {
            "anonymise": self._anonymise,
            "erase_loan_history": lambda _i, user: self._anonymise_loans(user["id"]) or _done("loan history detached"),
            "registration_expired": self._expire,
            "block_services": lambda i, user: self._block(i, user, BLOCK_PREFIX),
            "exclude": lambda i, user: self._block(i, user, EXCLUSION_PREFIX),
            "lift_block": self._lift,
        }
        try:
            user = self._user(user_id)
            if isinstance(user, Carried):
                return user
            return carry[instruction.action](instruction, user)
        except _Stop as stop:
            log.warning("FOLIO instruction %s (%s): %s", instruction.id, instruction.action, stop.carried.detail)
            return stop.carried

    def _user(self, user_id: str) -> dict[str, Any] | Carried:
        step = _Step("GET /users/{id}", "GET", f"/users/{_segment(user_id)}")
        answer = self._send(step)
        if answer.status_code == 200:
            return dict(answer.json())
        return _refused(step, answer)

    def _anonymise(self, instruction: Instruction, user: dict[str, Any]) -> Carried:
        refused = self._anonymise_loans(user["id"])
        if refused is not None:
            return refused
        personal = user.get("personal") or {}
        stripped = {key: value for key, value in user.items() if key not in _REMOVED_TOP}
        stripped["personal"] = {"lastName": ANONYMISED_LAST_NAME} | {
            key: personal[key] for key in _KEPT_PERSONAL if key in personal
        }
        refused = self._put_user(stripped)
        return refused or _done("personal data removed from the user; loan history detached")

    def _anonymise_loans(self, user_id: str) -> Carried | None:
        """POST /loan-anonymization/by-user/{id}: None when every closed loan was detached, else the refusal."""
        step = _Step(
            "POST /loan-anonymization/by-user/{id}", "POST", f"/loan-anonymization/by-user/{_segment(user_id)}"
        )
        answer = self._send(step)
        if answer.status_code == 200:
            errors = _json(answer).get("errors") or []
            if errors:  # mod-circulation answers 200 with the loans it kept and why (e.g. haveAssociatedFeesAndFines)
                code = _code_of(errors, answer.status_code)
                return Carried("rejected", code, f"FOLIO kept some loans linked to the user ({code}); nothing changed")
            return None
        return _refused(step, answer)

    def _put_user(self, user: dict[str, Any]) -> Carried | None:
        step = _Step("PUT /users/{id}", "PUT", f"/users/{_segment(user['id'])}")
        answer = self._send(step, body=user)
        return None if answer.status_code in {200, 204} else _refused(step, answer)

    def _expire(self, instruction: Instruction, user: dict[str, Any]) -> Carried:
        moment = now().astimezone(UTC)
        expires = _instant(user.get("expirationDate"))
        updated = {key: value for key, value in user.items() if key != "metadata"} | {"active": False}
        if expires is None or expires > moment:
            updated["expirationDate"] = moment.isoformat(timespec="milliseconds")
        return self._put_user(updated) or _done("registration marked expired (active=false)")

    def _blocks(self, user_id: str) -> list[dict[str, Any]]:
        step = _Step("GET /manualblocks", "GET", "/manualblocks")
        answer = self._send(step, params={"query": f"userId=={_segment(user_id)}", "limit": str(_PAGE)})
        if answer.status_code != 200:
            raise _Stop(_refused(step, answer))
        return list(_json(answer).get("manualblocks") or [])

    def _block(self, instruction: Instruction, user: dict[str, Any], prefix: str) -> Carried:
        if any(str(block.get("desc", "")).startswith(prefix) for block in self._blocks(user["id"])):
            return _done("kodex's manual block was there already")
        block = {
            "id": str(uuid.uuid4()),
            "type": "Manual",
            "desc": f"{prefix} under rule {instruction.rule}",
            "staffInformation": f"kodex instruction {instruction.id}, decision {instruction.decision_id}"
            + (f"; {instruction.cite}" if instruction.cite else ""),
            "borrowing": True,
            "renewals": True,
            "requests": True,
            "userId": user["id"],
        }
        step = _Step("POST /manualblocks", "POST", "/manualblocks")
        answer = self._send(step, body=block)
        return _done("manual block set") if answer.status_code in {200, 201} else _refused(step, answer)

    def _lift(self, instruction: Instruction, user: dict[str, Any]) -> Carried:
        lifted = 0
        for block in self._blocks(user["id"]):
            if not str(block.get("desc", "")).startswith(BLOCK_PREFIX):
                continue
            step = _Step("DELETE /manualblocks/{id}", "DELETE", f"/manualblocks/{_segment(str(block['id']))}")
            answer = self._send(step)
            if answer.status_code not in {204, 404}:  # 404: gone already
                return _refused(step, answer)
            lifted += 1
        return _done(f"{lifted} kodex manual block(s) lifted")

    # -- checking ----------------------------------------------------------------------------------------------

    def check(self) -> list[Check]:
        """Login, reading users and manual blocks, and the permissions PERMISSIONS: nothing is changed."""
        checks: list[Check] = []
        try:
            self._login()
        except _Stop as stop:
            return [Check("login", False, stop.carried.detail or "login refused")]
        checks.append(Check("login", True, f"logged in to tenant {self.config.tenant} as {self.config.username}"))
        for name, path in (("read users", "/users"), ("read manual blocks", "/manualblocks")):
            step = _Step(f"GET {path}", "GET", path)
            try:
                answer = self._send(step, params={"limit": "1"})
            except _Stop as stop:
                checks.append(Check(name, False, stop.carried.detail or ""))
                continue
            checks.append(Check(name, answer.status_code == 200, f"{step.name} answered {answer.status_code}"))
        checks.extend(self._permission_checks())
        return checks

    def _permission_checks(self) -> list[Check]:
        step = _Step("GET /bl-users/_self", "GET", "/bl-users/_self")
        try:
            answer = self._send(step, params={"include": "perms", "expandPermissions": "true"})
        except _Stop as stop:
            return [Check("permissions", False, stop.carried.detail or "")]
        if answer.status_code != 200:
            return [Check("permissions", False, f"could not list the user's permissions: {step.name} answered "
                          f"{answer.status_code}")]  # fmt: skip
        held = {
            (p if isinstance(p, str) else str(p.get("permissionName", "")))
            for p in ((_json(answer).get("permissions") or {}).get("permissions") or [])
        }
        return [
            Check(permission, permission in held, "granted" if permission in held else "missing: grant it to the user")
            for permission in PERMISSIONS
        ]

    # -- calling FOLIO -----------------------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        headers = {"X-Okapi-Tenant": self.config.tenant, "Accept": "application/json, text/plain"}
        if self._token is not None:
            headers["X-Okapi-Token"] = self._token
        return headers

    def _login(self) -> None:
        """Log in (login-with-expiry, else the classic login); _Stop when FOLIO refuses or is not reached."""
        credentials = {"username": self.config.username, "password": self.config.password.get_secret_value()}
        self._token = None
        for path in ("/authn/login-with-expiry", "/authn/login"):
            step = _Step(f"POST {path}", "POST", path)
            answer = self._exchange(step, body=credentials)
            self._http.cookies.clear()  # the tokens travel in X-Okapi-Token only
            if answer.status_code == 404 and path.endswith("expiry"):
                continue  # an older FOLIO: the classic login
            if answer.status_code in {200, 201}:
                token = answer.cookies.get("folioAccessToken") or answer.headers.get("x-okapi-token")
                if token:
                    self._token = token
                    return
                raise _Stop(Carried("failed", "not_authorised", f"{step.name} answered no token"))
            _raise_if_unavailable(step, answer)
            raise _Stop(Carried("failed", "not_authorised", f"FOLIO refused the login: {step.name} answered "
                                f"{answer.status_code}; check the username, password and tenant in the config"))  # fmt: skip

    def _send(
        self, step: _Step, *, body: dict[str, Any] | None = None, params: dict[str, str] | None = None
    ) -> httpx.Response:
        """The call's answer, logged in (again once on a 401); _Stop for 401/403, 429, 5xx and unreached FOLIO."""
        if self._token is None:
            self._login()
        answer = self._exchange(step, body=body, params=params)
        if answer.status_code == 401:
            log.info("FOLIO: %s answered 401; logging in again", step.name)
            self._login()
            answer = self._exchange(step, body=body, params=params)
        if answer.status_code in {401, 403}:
            raise _Stop(Carried("failed", "not_authorised", f"{step.name} answered {answer.status_code}: the FOLIO "
                                "user lacks a permission (README, FOLIO)"))  # fmt: skip
        _raise_if_unavailable(step, answer)
        return answer

    def _exchange(
        self, step: _Step, *, body: dict[str, Any] | None = None, params: dict[str, str] | None = None
    ) -> httpx.Response:
        try:
            answer = self._http.request(step.method, step.path, json=body, params=params, headers=self._headers())
        except httpx.TimeoutException:
            log.warning("FOLIO: %s timed out", step.name)
            raise _Stop(Carried("retry", "timeout", f"{step.name} timed out")) from None
        except httpx.TransportError as error:
            log.warning("FOLIO: %s not reached (%s)", step.name, type(error).__name__)
            raise _Stop(
                Carried("retry", "unreachable", f"{step.name}: FOLIO not reached ({type(error).__name__})")
            ) from None
        log.debug("FOLIO: %s answered %s", step.name, answer.status_code)
        return answer


# -- answers -------------------------------------------------------------------------------------------------------


def _done(detail: str) -> Carried:
    return Carried("done", detail=detail)


def _raise_if_unavailable(step: _Step, answer: httpx.Response) -> None:
    if answer.status_code == 429 or answer.status_code >= 500:
        raise _Stop(Carried("retry", f"http_{answer.status_code}", f"{step.name} answered {answer.status_code}",
                            _retry_after(answer.headers.get("Retry-After"))))  # fmt: skip


def _refused(step: _Step, answer: httpx.Response) -> Carried:
    """A 4xx answer (other than 401/403/429) as the instruction's outcome; any other (a redirect) is a failure."""
    status = answer.status_code
    if status == 404 and step.path.startswith("/users/"):
        return Carried("rejected", "not_found", f"{step.name} answered 404: FOLIO has no user with this id")
    if 400 <= status < 500:
        code = _code_of(_json(answer).get("errors") or [], status)
        return Carried("rejected", code, f"{step.name} answered {status} ({code})")
    return Carried("failed", f"http_{status}", f"{step.name} answered {status}, which FOLIO's API does not describe")


def _code_of(errors: list[Any], status: int) -> str:
    """FOLIO's machine code of the first error: its `code`, else its message when that is a key
    (haveAssociatedFeesAndFines), else http_<status>. Free text (which may name a person) is never returned."""
    first = errors[0] if errors and isinstance(errors[0], dict) else {}
    for candidate in (first.get("code"), first.get("message")):
        if isinstance(candidate, str) and _CODE.match(candidate) and candidate not in {"-1"}:
            return candidate
    return f"http_{status}"


def _json(answer: httpx.Response) -> dict[str, Any]:
    try:
        body = answer.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return body if isinstance(body, dict) else {}


def _retry_after(value: str | None) -> float | None:
    """Retry-After's seconds (RFC 9110 §10.2.3: a number of seconds or an HTTP date)."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        return max(0.0, (parsedate_to_datetime(value) - now()).total_seconds())
    except (TypeError, ValueError):
        return None


def _instant(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _segment(value: str) -> str:
    """An id as one path segment or CQL term: a FOLIO id is a UUID; anything else is refused before it is sent."""
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise _Stop(Carried("rejected", "not_a_folio_id", "the subject id is not a FOLIO user id (a UUID)")) from None
