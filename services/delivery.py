"""The push side of the instruction feed: each library's webhook (Standard Webhooks), its connector, and the relay.

- `set_webhook` makes a library's endpoint and a new signing secret (`whsec_…`, shown once; stored wrapped by the
  master key), replacing any earlier one.
- `deliver` hands the library's due pending instructions to its connector (services.connectors) for the actions
  the adapter carries out itself, and POSTs the others to the webhook: a thin JSON body (no personal data beyond
  `subject_id`) with the Standard Webhooks headers `webhook-id` (the instruction's id, the same on every retry),
  `webhook-timestamp` and `webhook-signature` (v1, HMAC-SHA256 of "id.timestamp.body", signed by the
  `standardwebhooks` package). Any 2xx: delivered. 410 Gone: the endpoint is disabled, the instruction stays
  pending for the pull. Anything else (a status, a timeout, no connection): tried again on RETRIES, with jitter,
  later when Retry-After asks for longer; after the last one it stays pending with no attempt scheduled
  (undeliverable: the pull and the work list still have it).
- `deliver_due` does that under the library's relay lock (one deliverer per library however many processes or
  machines), and `Relay` does it every few seconds for every library with a webhook or a connector (`kodex serve`).

Delivery runs beside the nightly run, never inside it: it reads pending rows, makes its HTTP calls outside any
transaction, and records each attempt in a short transaction of its own. Logs and stored errors name a status or an
error type only: never a body, a secret, a URL or a subject.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import ipaddress
import json
import logging
import random
import secrets
import socket
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from standardwebhooks import Webhook

from kodex.clock import library_today
from kodex.errors import Conflict, InvalidRequest, RunInProgress
from kodex.retention.locking import library_lock
from kodex.rules.actions import INSTRUCTED
from kodex.rules.ruleset import Ruleset
from kodex.services.connectors import Carried, Connector, connector_for
from kodex.services.instructions import Instruction, instruction_from_row, record_outcome
from kodex.services.setup import Workspace
from kodex.store.crypto import MasterKey
from kodex.store.database import Engine
from kodex.store.repositories import instructions as stored

__all__ = [
    "BATCH",
    "RETRIES",
    "Delivery",
    "Relay",
    "deliver",
    "deliver_due",
    "relay_lock",
    "set_webhook",
    "signed_request",
    "webhook_body",
]

log = logging.getLogger("kodex.delivery")

# When a failed delivery is tried again, counted from the failure: the first retry after ~5 s (a blip), then
# minutes, then hours; 5 s + 5 min + 30 min + 2 h + 5 h + 10 h + 14 h + 20 h + 20 h ≈ 72 h, so an endpoint that is
# down for a long weekend still gets everything. Ten attempts in all (the first and these nine); each delay is
# spread by ±JITTER so that a backlog does not come back all at once.
RETRIES: tuple[timedelta, ...] = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=14),
    timedelta(hours=20),
    timedelta(hours=20),
)
ATTEMPTS = len(RETRIES) + 1
JITTER = 0.1
MAX_RETRY_AFTER = timedelta(days=1)  # a Retry-After asking for more is read as this (the schedule is ~3 days)
BATCH = 500  # instructions read per pass
TIMEOUT = httpx.Timeout(10.0, connect=5.0)  # the endpoint's answer is all we wait for; a slow one is a failure
SECRET_BYTES = 32  # Standard Webhooks: 24 to 64 random bytes
MAX_URL = 2000
EVENT = "instruction.created"

_random = random.Random()  # jitter only: nothing secret comes from it


def _secret_aad(library: str) -> bytes:
    return f"webhook/{library}/secret".encode()


# -- the endpoint ----------------------------------------------------------------------------------------------------


def set_webhook(engine: Engine, master: MasterKey, library: str, url: str, *, private: bool = False) -> str:
    """Make `url` the library's endpoint with a new signing secret, replacing any earlier one; the secret (whsec_…).

    The secret is returned this once: only its wrapped form is kept. Unless `private` (the server's own command
    line, or the config's `webhook_private_networks`), the URL must be https:// and its host no loopback, private,
    link-local or reserved address, by itself or as its name resolves now: a library's admin must not make kodex
    call into the network it runs in. (A name that resolves otherwise later is not checked again.)
    """
    _check_url(url)
    if not private:
        _check_public(url)
    secret = secrets.token_bytes(SECRET_BYTES)
    with engine.begin() as connection:
        stored.set_webhook(connection, library, url, master.wrap(secret, _secret_aad(library)), datetime.now(UTC))
    log.info("library %s: webhook endpoint set (a new secret)", library)
    return "whsec_" + base64.b64encode(secret).decode()


def _check_url(url: str) -> None:
    example = "write the endpoint's full address, e.g. https://ils.example.org/kodex/instructions"
    if len(url) > MAX_URL:
        raise InvalidRequest(f"the URL is over {MAX_URL} characters; {example}")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        raise InvalidRequest(f"not a URL; {example}") from None
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise InvalidRequest(f"the URL must start with https:// (or http://) and name a host; {example}")
    if parts.username is not None or parts.password is not None:
        raise InvalidRequest(f"put no user name or password in the URL (the signature proves the sender); {example}")
    if any(c.isspace() for c in url):
        raise InvalidRequest(f"the URL has a space in it; {example}")


def _check_public(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme != "https":
        raise InvalidRequest(
            "the URL must start with https:// (the instruction names the reader by the library system's id); an "
            "http:// endpoint on the library's own network is set at the server: kodex webhooks set"
        )
    host = parts.hostname or ""
    try:
        addresses = {ipaddress.ip_address(host)}
    except ValueError:
        try:
            found = socket.getaddrinfo(host, parts.port or 443, proto=socket.IPPROTO_TCP)
        except (OSError, UnicodeError):
            found = []  # not resolvable now: nothing to refuse (it is not delivered to either, until it is)
        addresses = {ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in found}
    inner = [a for a in addresses if not a.is_global]
    if inner:
        raise InvalidRequest(
            "the URL's host is on a private, loopback or reserved network; an endpoint inside the library's own "
            "network is set at the server (kodex webhooks set), or allowed by the config's "
            "webhook_private_networks = true"
        )


# -- what is pushed --------------------------------------------------------------------------------------------------


def webhook_body(instruction: Instruction, at: datetime) -> bytes:
    """The JSON body pushed for `instruction`: its vendor-neutral form without the outcome's free text.

    `subject_id` is the only personal data in it (the library system's own id, to that library's endpoint only).
    """
    data = instruction.as_json()
    outcome = data.get("outcome")
    if outcome is not None:
        data["outcome"] = {"code": outcome["code"], "at": outcome["at"]}  # never the detail: it may name someone
    body = {"type": EVENT, "timestamp": at.astimezone(UTC).isoformat(), "data": data}
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def signed_request(secret: bytes, message_id: str, at: datetime, body: bytes) -> dict[str, str]:
    """The Standard Webhooks headers for `body`: webhook-id, webhook-timestamp (unix seconds), webhook-signature."""
    timestamp = datetime.fromtimestamp(int(at.timestamp()), UTC)
    return {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, timestamp, body),
    }


# -- delivering ------------------------------------------------------------------------------------------------------


@dataclass
class Delivery:
    """What one pass of `deliver` did for a library."""

    library: str
    delivered: int = 0  # pushed: the webhook answered 2xx
    carried_out: int = 0  # the connector did it (done)
    rejected: int = 0  # the connector's system said it cannot (with its code)
    failed: int = 0  # the connector tried and could not
    retried: int = 0  # failed this time: tried again later
    gave_up: int = 0  # failed for the last time in this pass: left for the pull
    skipped: int = 0  # its state changed meanwhile (an outcome came by pull), nothing sent
    disabled: bool = False  # the endpoint answered 410 Gone and was disabled
    undeliverable: int = 0  # all pending instructions now given up on (left for the pull and the work list)
    errors: dict[str, int] = field(default_factory=dict)  # each failure's status or error type, how many times

    @property
    def tried(self) -> int:
        return self.delivered + self.carried_out + self.rejected + self.failed + self.retried + self.gave_up

    def as_json(self) -> dict[str, Any]:
        return {
            "library": self.library, "delivered": self.delivered, "carried_out": self.carried_out,
            "rejected": self.rejected, "failed": self.failed, "retried": self.retried, "gave_up": self.gave_up,
            "skipped": self.skipped, "disabled": self.disabled, "undeliverable": self.undeliverable,
            "errors": dict(sorted(self.errors.items())),
        }  # fmt: skip


@dataclass(frozen=True)
class _Endpoint:
    url: str
    secret: bytes


def deliver(
    engine: Engine,
    ruleset: Ruleset,
    master: MasterKey,
    library: str,
    *,
    now: datetime | None = None,
    client: httpx.Client | None = None,
    connector: Connector | None = None,
    limit: int = BATCH,
) -> Delivery:
    """Deliver the library's pending instructions whose attempt has come (at most `limit`), as of `now`.

    The connector takes the actions it `can` carry out; the webhook the rest (when the library has one enabled);
    instructions neither takes stay as they are, for the pull. Call it under the relay lock (`deliver_due`).
    """
    at = now if now is not None else _now()
    fixed = now is not None
    summary = Delivery(library)
    with engine.connect() as connection:
        hook = stored.webhook_of(connection, library)
        endpoint = None
        if hook is not None and hook.disabled_at is None:
            endpoint = _Endpoint(hook.url, master.unwrap(hook.secret, _secret_aad(library)))
        actions = None if endpoint is not None else _actions_of(connector)
        rows = [] if actions == () else stored.due_for_delivery(connection, library, at, limit, actions=actions)
    own_client = client is None and endpoint is not None and rows
    http = httpx.Client(timeout=TIMEOUT, follow_redirects=False) if own_client else client
    today = library_today(ruleset, library)
    try:
        for row in rows:  # an outcome pulled meanwhile wins: an attempt is recorded only on a pending instruction
            instruction = instruction_from_row(row, master, today)
            if instruction.state != "pending":
                summary.skipped += 1
            elif connector is not None and connector.can(instruction.action):
                _by_connector(engine, ruleset, master, library, instruction, connector, at, summary)
            elif (
                endpoint is not None
                and http is not None
                # signed when sent (a receiver refuses an old timestamp), unless the caller fixed the clock
                and _by_webhook(engine, library, instruction, endpoint, http, at if fixed else _now(), summary)
            ):
                endpoint = None  # 410 Gone, or no answer: the rest wait (the connector still takes its own)
    finally:
        if own_client and http is not None:
            http.close()
    with engine.connect() as connection:
        summary.undeliverable = stored.count_undeliverable(connection, library)
    if summary.tried or summary.disabled:
        log.info("library %s: delivery: %s", library, _counts(summary))
    return summary


def _now() -> datetime:
    return datetime.now(UTC)


def _actions_of(connector: Connector | None) -> tuple[str, ...]:
    """The actions the connector carries out (with no webhook, only those are worth reading)."""
    if connector is None:
        return ()
    return tuple(action for action in INSTRUCTED if connector.can(action))


def _by_connector(
    engine: Engine,
    ruleset: Ruleset,
    master: MasterKey,
    library: str,
    instruction: Instruction,
    connector: Connector,
    at: datetime,
    summary: Delivery,
) -> None:
    try:
        carried = connector.carry_out(instruction)
    except Exception as broken:  # an adapter's bug or an unexpected answer: tried again, like a failed push
        carried = Carried("retry", code=type(broken).__name__)
    if carried.state == "retry":
        why = f"{connector.system}: {carried.code or 'not reached'}"
        _failed(engine, library, instruction, at, why, carried.retry_after, summary)
        return
    actor = {"type": "connector", "id": connector.system, "role": None}
    try:
        record_outcome(
            engine, ruleset, master, library, instruction.id, carried.state, code=carried.code, detail=carried.detail,
            actor=actor, by="connector",
        )  # fmt: skip
    except Conflict:  # an outcome came another way meanwhile: that one stands
        summary.skipped += 1
        return
    with engine.begin() as connection:
        row = stored.by_id(connection, library, instruction.id, lock=True)
        if row is not None:
            stored.record_attempt(connection, row.id, at=at, next_attempt_at=None)
    if carried.state == "done":
        summary.carried_out += 1
    elif carried.state == "rejected":
        summary.rejected += 1
    else:
        summary.failed += 1


def _by_webhook(
    engine: Engine,
    library: str,
    instruction: Instruction,
    endpoint: _Endpoint,
    http: httpx.Client,
    at: datetime,
    summary: Delivery,
) -> bool:
    """POST the instruction, signed as of `at`; whether to stop this pass (410: disabled; no answer at all)."""
    body = webhook_body(instruction, at)
    headers = signed_request(endpoint.secret, instruction.id, at, body)
    try:
        answer = http.post(endpoint.url, content=body, headers=headers)
    except httpx.TimeoutException:
        _failed(engine, library, instruction, at, "timeout", None, summary)
        return True  # the endpoint does not answer: the rest wait for the next pass, not a timeout each
    except httpx.HTTPError as error:  # no connection, a broken answer: its type only (the text may hold the URL)
        _failed(engine, library, instruction, at, f"connection failed: {type(error).__name__}", None, summary)
        return True
    if answer.is_success:
        if _attempted(engine, library, instruction.id, at=at, state="delivered", next_attempt_at=None, error=None):
            summary.delivered += 1
        else:
            summary.skipped += 1
        return False
    if answer.status_code == 410:
        with engine.begin() as connection:
            stored.disable_webhook(connection, library, at)
        # still pending, still scheduled: the pull has it, and a new endpoint (kodex webhooks set) gets it
        _attempted(engine, library, instruction.id, at=at, next_attempt_at=at, error="HTTP 410: endpoint disabled")
        summary.disabled = True
        summary.errors["HTTP 410"] = summary.errors.get("HTTP 410", 0) + 1
        log.warning("library %s: the webhook endpoint answered 410 Gone; it is disabled (set it again to resume)",
                    library)  # fmt: skip
        return True
    wait = retry_after(answer.headers.get("retry-after"), at)
    _failed(engine, library, instruction, at, f"HTTP {answer.status_code}", wait, summary)
    return False


def _failed(
    engine: Engine,
    library: str,
    instruction: Instruction,
    at: datetime,
    error: str,
    wait: float | None,
    summary: Delivery,
) -> None:
    """A failed attempt: the next one on the schedule (later if `wait` seconds asks for it), or none after the last."""
    summary.errors[error] = summary.errors.get(error, 0) + 1
    attempt = instruction.attempts + 1  # this one
    if attempt >= ATTEMPTS:
        given_up = f"gave up after {attempt} attempts: {error}"
        if _attempted(engine, library, instruction.id, at=at, next_attempt_at=None, error=given_up[:200]):
            summary.gave_up += 1
        return
    delay = next_delay(attempt, wait)
    if _attempted(engine, library, instruction.id, at=at, next_attempt_at=at + delay, error=error[:200]):
        summary.retried += 1


def next_delay(attempt: int, wait: float | None = None, jitter: Callable[[], float] | None = None) -> timedelta:
    """How long after failed attempt number `attempt` (1: the first) to try again; at least `wait` seconds."""
    spread = jitter() if jitter is not None else _random.uniform(-JITTER, JITTER)
    delay = RETRIES[min(attempt, len(RETRIES)) - 1] * (1 + spread)
    if wait is not None:
        delay = max(delay, min(timedelta(seconds=wait), MAX_RETRY_AFTER))
    return delay


def retry_after(value: str | None, at: datetime) -> float | None:
    """Retry-After's seconds, from a number of seconds or an HTTP date (None: absent or unreadable)."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        moment = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - at).total_seconds())


def _attempted(
    engine: Engine,
    library: str,
    instruction_id: str,
    *,
    at: datetime,
    next_attempt_at: datetime | None,
    error: str | None,
    state: str | None = None,
) -> bool:
    """Record an attempt if the instruction is still pending (an outcome may have come by pull meanwhile)."""
    with engine.begin() as connection:
        row = stored.by_id(connection, library, instruction_id, lock=True)
        if row is None or row.state != "pending":
            return False
        stored.record_attempt(connection, row.id, at=at, state=state, next_attempt_at=next_attempt_at, error=error)
    return True


def _counts(summary: Delivery) -> str:
    parts = [f"{name} {n}" for name, n in summary.as_json().items() if isinstance(n, int) and not isinstance(n, bool)]
    return ", ".join(parts) + ("; endpoint disabled (410)" if summary.disabled else "")


# -- one deliverer at a time -----------------------------------------------------------------------------------------


def relay_lock(library: str) -> str:
    """The key of the library's delivery lock: apart from its run lock (delivery never waits for a night)."""
    key = f"{library}:relay"
    return key if len(key) <= 64 else "relay:" + hashlib.sha256(library.encode()).hexdigest()[:48]


def deliver_due(
    workspace: Workspace,
    ruleset: Ruleset,
    library: str,
    *,
    connector: Connector | None = None,
    client: httpx.Client | None = None,
    now: datetime | None = None,
    wait: float = 0.0,
) -> Delivery:
    """`deliver` under the library's relay lock, so that one process at a time delivers its instructions.

    Raises RunInProgress when another process is delivering them and `wait` seconds pass. With no `connector`
    given, the one the config names for the library is used (and closed afterwards).
    """
    own = None
    if connector is None and library in workspace.settings.connectors:
        own = connector = connector_for(workspace.settings.connectors[library])
    try:
        with library_lock(workspace.engine, relay_lock(library), str(uuid.uuid4()), wait=wait):
            return deliver(
                workspace.engine, ruleset, workspace.master, library, now=now, client=client, connector=connector
            )
    except RunInProgress:
        raise RunInProgress(
            f"library {library!r}: another process is delivering its instructions now (kodex serve's relay?); "
            "nothing was sent. Try again later, or pass --wait SECONDS."
        ) from None
    finally:
        if own is not None:
            own.close()


# -- the relay in `kodex serve` --------------------------------------------------------------------------------------


class Relay:
    """Delivers what is due for every library with a webhook or a connector, every `every` seconds (kodex serve).

    Runs as one job of the scheduler's, so only the process that runs the nightly scheduler relays (with
    `--workers N`, the supervising process); the relay lock keeps two `kodex serve` on one store from delivering
    the same library at once (the second skips it that turn).
    """

    JOB = "relay"

    def __init__(self, workspace: Workspace, ruleset: Ruleset, every: float = 5.0) -> None:
        self.workspace, self.ruleset, self.every = workspace, ruleset, every
        self.client = httpx.Client(timeout=TIMEOUT, follow_redirects=False)
        self.connectors: dict[str, Connector] = {}

    def libraries(self) -> list[str]:
        """The policy's libraries with an enabled webhook or a configured connector."""
        with self.workspace.engine.connect() as connection:
            hooked = set(stored.webhooks_enabled(connection))
        configured = set(self.workspace.settings.connectors)
        return [library for library in self.ruleset.libraries if library in hooked | configured]

    def connector(self, library: str) -> Connector | None:
        configs: Mapping[str, Any] = self.workspace.settings.connectors
        if library not in configs:
            return None
        if library not in self.connectors:
            self.connectors[library] = connector_for(configs[library])
        return self.connectors[library]

    def once(self, now: datetime | None = None) -> dict[str, Delivery]:
        """One turn over the libraries; never raises (a library's failure is logged by type, the others go on)."""
        done: dict[str, Delivery] = {}
        try:
            libraries = self.libraries()
        except Exception as error:
            log.error("relay: could not read the libraries to deliver for (%s)", type(error).__name__)
            return done
        for library in libraries:
            try:
                done[library] = deliver_due(
                    self.workspace, self.ruleset, library, connector=self.connector(library), client=self.client,
                    now=now,
                )  # fmt: skip
            except RunInProgress:
                continue  # another process is delivering this library's instructions
            except Exception as error:
                log.error("relay: library %s: delivery failed (%s); tried again next turn", library,
                          type(error).__name__)  # fmt: skip
        return done

    def add_to(self, scheduler: Any) -> None:
        """Add the relay as an interval job of an APScheduler scheduler (one run at a time, late turns dropped)."""
        from apscheduler.triggers.interval import IntervalTrigger  # type: ignore[import-untyped]  # noqa: PLC0415

        scheduler.add_job(
            self.once, IntervalTrigger(seconds=self.every), id=self.JOB, name="instruction relay (webhooks, connectors)",
            max_instances=1, coalesce=True, misfire_grace_time=None, replace_existing=True,
        )  # fmt: skip

    def close(self) -> None:
        self.client.close()
        for connector in self.connectors.values():
            connector.close()
        self.connectors.clear()
