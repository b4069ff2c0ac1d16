"""The Koha adapter: carries instructions out over Koha's REST API (`/api/v1`, OAuth2 client credentials).

Written from Koha's published API description (api/v1/swagger: paths/oauth.yaml, paths/patrons.yaml,
definitions/patron.yaml). An instruction's `subject_id` is Koha's `patron_id` (the borrowernumber): the import
must carry it as the reader's id for this adapter to find the patron.

What it carries out:
- `anonymise`, only when the config says `delete_on_anonymise` (the library's policy allows erasure):
  `DELETE /patrons/{patron_id}`. Koha cannot anonymise a patron in place over its API, and a deleted patron is
  copied into `deletedborrowers` until the library's cleanup job (`cleanup_database.pl --deleted-patrons`) removes
  it. Koha's 409 answers (`has_checkouts`, `has_debt`, `has_guarantees`, `is_anonymous_patron`, `is_protected`)
  become `rejected` with that code.
- `registration_expired`: sets the patron's `expiry_date` to the day before the instruction was written (Koha
  treats a card as expired after its expiry date). `PUT /patrons/{patron_id}` replaces the whole patron, so the
  adapter reads the patron first and sends it back with the new date and without the read-only fields.

Everything else stays for the work list (`can` is False): Koha's API has no endpoint that adds or removes a
restriction (debarment) and the patron's `restricted` is read-only, so `block_services`, `exclude` and
`lift_block` cannot be done honestly over it; nor can erasing the loan history (no endpoint anonymises old
checkouts), the guardian's data (guarantor links are not in the patron object), or a camera recording (`purge`).

Answers: 2xx → done; 404 → rejected `not_found`; 409 → rejected with Koha's `error_code`; 400/422 → failed with
Koha's `error_code` (or `http_400`); 401/403 → failed `not_authorised` (a 401 first gets one new token and one
more try); 5xx, 429 and timeouts → retry, after Retry-After when Koha sends it. The client secret and the token
are never logged nor put in a detail; a detail names the step and the status, never Koha's body.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from kodex.config import KohaConnector
from kodex.rules.actions import EXCLUDE
from kodex.services.connectors import Carried, Check
from kodex.services.instructions import Instruction

__all__ = ["CARRIED_OUT", "NOT_OVER_THE_API", "READ_ONLY", "KohaAdapter"]

log = logging.getLogger(__name__)

# The actions this adapter carries out itself; `anonymise` only with delete_on_anonymise.
CARRIED_OUT = frozenset({"anonymise", "registration_expired"})
# What kodex leaves to the work list for Koha, and why (README, "Koha").
NOT_OVER_THE_API = frozenset(
    {"erase_guardian_data", "erase_loan_history", "purge", "block_services", "lift_block", EXCLUDE}
)
# The patron's fields Koha computes: a PUT that sends them back is refused (definitions/patron.yaml, readOnly).
READ_ONLY = ("patron_id", "restricted", "expired", "anonymized")
TOKEN_MARGIN_S = 30.0  # a token this close to its expiry is renewed before use
_SAFE_CODE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")  # Koha's error_code values; anything else is not passed on
_PATRON_ID = re.compile(r"^[1-9][0-9]{0,18}$")


class _Stop(Exception):
    """A step ended the instruction: `carried` says how."""

    def __init__(self, carried: Carried) -> None:
        super().__init__(carried.detail)
        self.carried = carried


class KohaAdapter:
    """One library's Koha. `transport` is for tests (an in-process fake); `clock` counts seconds."""

    system = "koha"

    def __init__(
        self,
        config: KohaConnector,
        *,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self._clock = clock
        self._token: str | None = None
        self._token_until = 0.0
        self._http = httpx.Client(
            base_url=f"{config.url}/api/v1",
            timeout=config.timeout_s,
            transport=transport,
            headers={"Accept": "application/json"},
            follow_redirects=False,
        )

    def can(self, action: str) -> bool:
        if action == "anonymise":
            return self.config.delete_on_anonymise
        return action in CARRIED_OUT

    def carry_out(self, instruction: Instruction) -> Carried:
        if not self.can(instruction.action):
            return Carried("failed", code="not_supported", detail=f"Koha does not carry out {instruction.action}")
        if instruction.subject_type != "reader" or not _PATRON_ID.match(instruction.subject_id):
            return Carried(
                "failed",
                code="invalid_subject_id",
                detail="the reader's id is not a Koha patron_id (a whole number): import readers with it",
            )
        try:
            if instruction.action == "anonymise":
                return self._delete_patron(instruction.subject_id)
            return self._expire_registration(instruction.subject_id, _expired_on(instruction))
        except _Stop as stop:
            return stop.carried

    def check(self) -> list[Check]:
        """Gets a token, lists one patron and reads one: proves the connection and the read permission."""
        self._token = None
        checks: list[Check] = []
        try:
            self._fetch_token("token")
        except _Stop as stop:
            checks.append(Check("token", False, stop.carried.detail or "no token"))
            checks.append(Check("list patrons", False, "not tried: no token"))
            return checks
        checks.append(Check("token", True, "Koha gave an access token to the client credentials"))
        try:
            listed = self._expect_ok("list patrons", "GET", "/patrons", params={"_per_page": 1})
        except _Stop as stop:
            checks.append(Check("list patrons", False, stop.carried.detail or "failed"))
            return checks
        checks.append(Check("list patrons", True, "GET /api/v1/patrons answered 200"))
        first = _first_patron_id(listed)
        if first is None:
            checks.append(Check("read a patron", True, "not tried: Koha lists no patron"))
            return checks
        try:
            self._expect_ok("read a patron", "GET", f"/patrons/{first}")
        except _Stop as stop:
            checks.append(Check("read a patron", False, stop.carried.detail or "failed"))
            return checks
        checks.append(Check("read a patron", True, "GET /api/v1/patrons/{patron_id} answered 200"))
        return checks

    def close(self) -> None:
        self._http.close()

    # -- the actions ------------------------------------------------------------------------------

    def _delete_patron(self, patron_id: str) -> Carried:
        try:
            self._expect_ok("delete the patron", "DELETE", f"/patrons/{patron_id}")
        except _Stop as stop:
            if stop.carried.code != "not_found":
                raise
            # no such patron: gone already (an earlier attempt deleted it and its answer was lost, or the library
            # did it by hand): what the instruction asks for holds
            return Carried("done", code="already_gone", detail="Koha holds no such patron (deleted already)")
        return Carried("done", detail="Koha deleted the patron (kept in deletedborrowers until its cleanup job)")

    def _expire_registration(self, patron_id: str, expired_on: date) -> Carried:
        patron = self._expect_ok("read the patron", "GET", f"/patrons/{patron_id}")
        if not isinstance(patron, dict):
            return Carried("failed", code="unexpected_answer", detail="read the patron: Koha's answer is no patron")
        current = _date(patron.get("expiry_date"))
        if current is not None and current <= expired_on:
            return Carried("done", detail="the registration had already expired in Koha")
        body = {key: value for key, value in patron.items() if key not in READ_ONLY}
        body["expiry_date"] = expired_on.isoformat()
        self._expect_ok("update the patron's expiry date", "PUT", f"/patrons/{patron_id}", json=body)
        return Carried("done", detail=f"Koha's expiry date is now {expired_on.isoformat()}")

    # -- the HTTP steps ---------------------------------------------------------------------------

    def _expect_ok(self, step: str, method: str, path: str, **request: Any) -> Any:
        """Koha's JSON answer to a 2xx (None when it has no body); any other answer stops the instruction."""
        response = self._call(step, method, path, **request)
        if response.status_code == 401:
            self._token = None  # expired or revoked early: one new token, one more try
            response = self._call(step, method, path, **request)
        if response.is_success:
            return _json(response) if response.content else None
        raise _Stop(_answer(step, response))

    def _call(self, step: str, method: str, path: str, **request: Any) -> httpx.Response:
        token = self._current_token(step)
        try:
            response = self._http.request(method, path, headers={"Authorization": f"Bearer {token}"}, **request)
        except httpx.TimeoutException as error:
            raise _Stop(Carried("retry", code="timeout", detail=f"{step}: Koha did not answer in time")) from error
        except httpx.TransportError as error:
            raise _Stop(Carried("retry", code="unreachable", detail=f"{step}: Koha was not reached")) from error
        log.info("koha %s: %s", step, response.status_code)
        return response

    def _current_token(self, step: str) -> str:
        if self._token is None or self._clock() >= self._token_until:
            self._fetch_token(step)
        if self._token is None:
            raise _Stop(Carried("failed", code="not_authorised", detail=f"{step}: no access token"))
        return self._token

    def _fetch_token(self, step: str) -> None:
        self._token = None
        form = {
            "grant_type": "client_credentials",
            "client_id": self.config.client_id,
            "client_secret": self.config.client_secret.get_secret_value(),
        }
        what = f"{step}: getting a token" if step != "token" else "getting a token"
        try:
            response = self._http.post("/oauth/token", data=form)
        except httpx.TimeoutException as error:
            raise _Stop(Carried("retry", code="timeout", detail=f"{what}: Koha did not answer in time")) from error
        except httpx.TransportError as error:
            raise _Stop(Carried("retry", code="unreachable", detail=f"{what}: Koha was not reached")) from error
        log.info("koha token: %s", response.status_code)
        if response.status_code in (400, 401, 403):
            raise _Stop(
                Carried(
                    "failed",
                    code="not_authorised",
                    detail=f"{what}: Koha answered {response.status_code}; check the client id and secret and that "
                    "the system preference RESTOAuth2ClientCredentials is on",
                )
            )
        if not response.is_success:
            raise _Stop(_answer(what, response))
        answer = _json(response)
        token = answer.get("access_token") if isinstance(answer, dict) else None
        if not isinstance(token, str) or not token:
            raise _Stop(Carried("failed", code="unexpected_answer", detail=f"{what}: Koha's answer holds no token"))
        expires_in = answer.get("expires_in")
        lifetime = float(expires_in) if isinstance(expires_in, int | float) and expires_in > 0 else 3600.0
        self._token = token
        self._token_until = self._clock() + max(lifetime - TOKEN_MARGIN_S, 0.0)


def _answer(step: str, response: httpx.Response) -> Carried:
    """What a non-2xx answer means for the instruction. The detail names the step and the status only."""
    status = response.status_code
    said = f"{step}: Koha answered {status}"
    if status == 404:
        return Carried("rejected", code="not_found", detail=f"{said} (no such patron)")
    if status == 409:
        return Carried("rejected", code=_error_code(response) or "conflict", detail=said)
    if status in (401, 403):
        return Carried(
            "failed",
            code="not_authorised",
            detail=f"{said}; give the API client's patron the permissions the README lists",
        )
    if status == 429 or status >= 500:
        return Carried("retry", code=f"http_{status}", detail=said, retry_after=_retry_after(response))
    return Carried("failed", code=_error_code(response) or f"http_{status}", detail=said)


def _error_code(response: httpx.Response) -> str | None:
    """Koha's `error_code` (e.g. has_debt) when it is a plain code; never its free-text `error`."""
    try:
        body = response.json()
    except ValueError:
        return None
    code = body.get("error_code") if isinstance(body, dict) else None
    return code if isinstance(code, str) and _SAFE_CODE.match(code) else None


def _retry_after(response: httpx.Response) -> float | None:
    """Retry-After in seconds (RFC 9110 §10.2.3: a number of seconds or an HTTP date)."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError as error:
        raise _Stop(Carried("failed", code="unexpected_answer", detail="Koha's answer is not JSON")) from error


def _first_patron_id(listed: Any) -> int | None:
    if isinstance(listed, list) and listed and isinstance(listed[0], Mapping):
        patron_id = listed[0].get("patron_id")
        if isinstance(patron_id, int) and not isinstance(patron_id, bool):
            return patron_id
    return None


def _date(value: Any) -> date | None:
    if not isinstance(value, str):
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def _expired_on(instruction: Instruction) -> date:
    """The day before the instruction was written: from then on Koha sees the card as expired."""
    return instruction.created_at.astimezone(UTC).date() - timedelta(days=1)
