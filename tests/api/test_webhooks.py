"""The push side of the instruction feed: webhooks (Standard Webhooks), connectors, the relay.

Issue 18: "`kodex webhooks set --library ID --url URL` (and `PUT /v1/libraries/{library}/webhook` for the
`library_admin`) prints a new signing secret once (`whsec_…`). Deliveries follow the Standard Webhooks spec:
headers `webhook-id` (the same on every retry …), `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256
of "id.timestamp.body">`; thin JSON bodies (no personal data beyond `subject_id`); any 2xx is delivered; retries
with backoff and jitter (first retry after ~5 s, then minutes, hours, ~3 days in all), honouring `Retry-After`;
`410 Gone` disables the endpoint; undeliverable ones stay pending for pull and are reported."

The receiver is a real HTTP server on localhost in a thread; it checks signatures with hmac itself, from the secret
the command line printed. Time is a fake clock (`now=`), never a sleep.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from kodex.api.web import create_app
from kodex.retention.locking import library_lock
from kodex.rules.ruleset import Ruleset
from kodex.services.connectors import Carried, Check
from kodex.services.delivery import Relay, deliver, deliver_due, relay_lock, webhook_body
from kodex.services.instructions import Instruction, list_instructions
from kodex.services.setup import Workspace
from kodex.services.users import add_user
from kodex.store.repositories.instructions import webhook_of
from kodex.store.schema import instructions
from tests.retention.support import import_file, run
from tests.support import SAMPLE, client, kodex, ok

LIBRARY, OTHER = "kntb", "svkpk"
ISSUE = "issue 18"


# -- a receiver ------------------------------------------------------------------------------------------------------


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A local endpoint answering from `script` (status, headers) in turn, then `then`; it keeps what it got."""

    url: str
    got: list[Received] = field(default_factory=list)
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    then: tuple[int, dict[str, str]] = (200, {})


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    box: list[Receiver] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            me = box[0]
            body = self.rfile.read(int(self.headers["content-length"]))
            me.got.append(Received({k.lower(): v for k, v in self.headers.items()}, body))
            status, headers = me.script.pop(0) if me.script else me.then
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("content-length", "18")
            self.end_headers()
            self.wfile.write(b"a body never kept\n")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    box.append(Receiver(f"http://127.0.0.1:{server.server_address[1]}/kodex/instructions"))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield box[0]
    finally:
        server.shutdown()
        server.server_close()


def verified(secret: str, received: Received) -> dict[str, Any]:
    """The body, after checking its Standard Webhooks signature with hmac (independently of kodex's signing)."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{received.headers['webhook-id']}.{received.headers['webhook-timestamp']}.".encode() + received.body
    expected = "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    assert any(hmac.compare_digest(expected, s) for s in received.headers["webhook-signature"].split(" "))
    body: dict[str, Any] = json.loads(received.body)
    return body


# -- an installation with instructions ---------------------------------------------------------------------------


@pytest.fixture
def stocked(workspace: Workspace, ruleset: Ruleset) -> Workspace:
    """The samples imported and kntb's night run: kntb has pending instructions (svkpk none)."""
    import_file(workspace, ruleset, SAMPLE)
    run(workspace, ruleset, LIBRARY)
    return workspace


def set_hook(url: str) -> str:
    """`kodex webhooks set`: the secret it printed alone on stdout."""
    secret = ok("webhooks", "set", "--library", LIBRARY, "--url", url).stdout.strip()
    assert secret.startswith("whsec_")
    return secret


def pending(work: Workspace, ruleset: Ruleset) -> list[Instruction]:
    return list_instructions(work.engine, ruleset, work.master, LIBRARY, state="pending")


def row(work: Workspace, instruction_id: str) -> Any:
    with work.engine.connect() as connection:
        return connection.execute(select(instructions).where(instructions.c.id == instruction_id)).one()


def aware(at: datetime | None) -> datetime | None:
    return at if at is None or at.tzinfo is not None else at.replace(tzinfo=UTC)


def soon() -> datetime:
    """A moment after every instruction's first attempt came due (they are due when written)."""
    return datetime.now(UTC) + timedelta(seconds=1)


# -- signing, delivering ---------------------------------------------------------------------------------------------


def test_every_instruction_is_pushed_signed_with_the_secret_the_command_printed(
    stocked: Workspace, ruleset: Ruleset, receiver: Receiver
) -> None:
    before = pending(stocked, ruleset)
    secret = set_hook(receiver.url)
    printed = ok("instructions", "deliver", "--library", LIBRARY).stdout
    assert f"delivered {len(before)}" in printed
    bodies = [verified(secret, got) for got in receiver.got]
    assert [b["data"]["id"] for b in bodies] == [i.id for i in before]  # in sequence order
    assert all(got.headers["webhook-id"] == body["data"]["id"] for got, body in zip(receiver.got, bodies, strict=True))
    assert all(abs(int(got.headers["webhook-timestamp"]) - datetime.now(UTC).timestamp()) < 60 for got in receiver.got)
    assert all(body["type"] == "instruction.created" for body in bodies)
    assert pending(stocked, ruleset) == []
    assert {i.state for i in list_instructions(stocked.engine, ruleset, stocked.master, LIBRARY)} == {"delivered"}


def test_a_failed_push_is_retried_after_about_5_s_with_the_same_webhook_id_then_delivered(
    stocked: Workspace, ruleset: Ruleset, receiver: Receiver
) -> None:
    secret = set_hook(receiver.url)
    first = pending(stocked, ruleset)[0]
    receiver.script = [(500, {})]
    t0 = soon()
    summary = deliver(stocked.engine, ruleset, stocked.master, LIBRARY, now=t0, limit=1)
    assert (summary.retried, summary.delivered, summary.errors) == (1, 0, {"HTTP 500": 1})
    stored = row(stocked, first.id)
    assert stored.state == "pending" and stored.attempts == 1 and stored.last_error == "HTTP 500"
    assert t0 + timedelta(seconds=4.5) <= aware(stored.next_attempt_at) <= t0 + timedelta(seconds=5.5)
    deliver(stocked.engine, ruleset, stocked.master, LIBRARY, now=t0 + timedelta(seconds=4), limit=1)
    assert row(stocked, first.id).attempts == 1  # not due yet: not tried (the next one in sequence was)
    again = deliver(stocked.engine, ruleset, stocked.master, LIBRARY, now=t0 + timedelta(seconds=6), limit=1)
    assert again.delivered == 1
    mine = [got for got in receiver.got if got.headers["webhook-id"] == first.id]
    assert len(mine) == 2
    assert [verified(secret, got)["data"]["id"] for got in mine] == [first.id, first.id]
    assert int(mine[1].headers["webhook-timestamp"]) > int(mine[0].headers["webhook-timestamp"])
    assert row(stocked, first.id).state == "delivered"


@pytest.mark.parametrize("header", ["120", "http-date"])
def test_retry_after_is_honoured_when_it_asks_for_longer(
    stocked: Workspace, ruleset: Ruleset, receiver: Receiver, header: str
) -> None:
    set_hook(receiver.url)
    first = pending(stocked, ruleset)[0]
    t0 = soon()
    value = header if header != "http-date" else format_datetime(t0 + timedelta(seconds=121), usegmt=True)
    receiver.script = [(503, {"Retry-After": value})]
    deliver(stocked.engine, ruleset, stocked.master, LIBRARY, now=t0, limit=1)
    assert aware(row(stocked, first.id).next_attempt_at) >= t0 + timedelta(seconds=119)


def test_a_shorter_retry_after_does_not_hasten_the_schedule(
    stocked: Workspace, ruleset: Ruleset, receiver: Receiver
) -> None:
    set_hook(receiver.url)
    first = pending(stocked, ruleset)[0]
    t0 = soon()
    receiver.script = [(429, {"Retry-After": "1"})]
    deliver(stocked.engine, ruleset, stocked.master, LIBRARY, now=t0, limit=1)
    assert aware(row(stocked, first.id).next_attempt_at) >= t0 + timedelta(seconds=4.5)


def test_410_gone_disables_the_endpoint_and_the_instruction_stays_pending_for_the_pull(
    stocked: Workspace, ruleset: Ruleset, receiver: Receiver
) -> None:
    set_hook(receiver.url)
    first = pending(stocked, ruleset)[0]
    receiver.script = [(410, {})]
    summary = deliver(stocked.engine, ruleset, stocked.master, LIBRARY, now=soon())
    assert summary.disabled and summary.delivered == 0
    assert len(receiver.got) == 1  # nothing more was pushed to a gone endpoint
    with stocked.engine.connect() as connection:
        assert webhook_of(connection, LIBRARY).disabled_at is not None
    assert row(stocked, first.id).state == "pending"
    assert first.id in [i.id for i in pending(stocked, ruleset)]
    later = deliver(stocked.engine, ruleset, stocked.master, LIBRARY, now=soon() + timedelta(hours=1))
    assert later.tried == 0 and len(receiver.got) == 1


def test_after_about_three_days_of_failures_it_stays_pending_unscheduled_and_is_counted_undeliverable(
    stocked: Workspace, ruleset: Ruleset, receiver: Receiver
) -> None:
    set_hook(receiver.url)
    first = pending(stocked, ruleset)[0]
    receiver.then = (503, {})
    t0 = at = soon()
    for _ in range(20):
        summary = deliver(stocked.engine, ruleset, stocked.master, LIBRARY, now=at, limit=1)
        following = aware(row(stocked, first.id).next_attempt_at)
        if following is None:
            break
        at = following
    stored = row(stocked, first.id)
    assert stored.state == "pending" and stored.next_attempt_at is None
    assert stored.last_error == "gave up after 10 attempts: HTTP 503"
    assert (summary.gave_up, summary.undeliverable) == (1, 1)
    assert len(receiver.got) == 10 and {got.headers["webhook-id"] for got in receiver.got} == {first.id}
    assert timedelta(hours=64) <= at - t0 <= timedelta(hours=80)  # ~3 days in all, give or take the jitter
    assert first.id in [i.id for i in pending(stocked, ruleset)]  # the pull still has it


def test_an_endpoint_set_again_gets_what_was_given_up_on(
    stocked: Workspace, ruleset: Ruleset, receiver: Receiver
) -> None:
    set_hook(receiver.url)
    first = pending(stocked, ruleset)[0]
    receiver.then = (503, {})
    at = soon()
    while (following := aware(row(stocked, first.id).next_attempt_at)) is not None:
        deliver(stocked.engine, ruleset, stocked.master, LIBRARY, now=max(at, following), limit=1)
        at = max(at, following)
    receiver.then = (204, {})
    set_hook(receiver.url)  # the library fixed its endpoint and set it again
    deliver(stocked.engine, ruleset, stocked.master, LIBRARY, now=at + timedelta(seconds=1), limit=1)
    assert row(stocked, first.id).state == "delivered"


def test_a_connection_refused_is_retried_and_recorded_by_its_type_only(
    stocked: Workspace, ruleset: Ruleset, receiver: Receiver
) -> None:
    set_hook("http://127.0.0.1:9/nothing-listens-here")
    first = pending(stocked, ruleset)[0]
    summary = deliver(stocked.engine, ruleset, stocked.master, LIBRARY, now=soon(), limit=1)
    assert summary.retried == 1
    assert row(stocked, first.id).last_error == "connection failed: ConnectError"


def test_the_pushed_body_holds_no_personal_data_beyond_subject_id(
    stocked: Workspace, ruleset: Ruleset, receiver: Receiver
) -> None:
    set_hook(receiver.url)
    deliver(stocked.engine, ruleset, stocked.master, LIBRARY, now=soon())
    records = {r["id"]: r for r in map(json.loads, SAMPLE.read_text(encoding="utf-8").splitlines())}
    assert receiver.got
    for got in receiver.got:
        text = got.body.decode()
        record = records[json.loads(text)["data"]["subject_id"]]
        personal = [v for part in ("personal", "guardian") for v in (record.get(part) or {}).values() if v]
        assert personal and not [value for value in personal if str(value) in text]
        assert record["birth_date"] not in text


def test_an_outcomes_free_text_is_never_in_a_pushed_body(stocked: Workspace, ruleset: Ruleset) -> None:
    instruction = pending(stocked, ruleset)[0]
    with_detail = Instruction(
        **{**instruction.__dict__, "outcome_code": "has_debt", "outcome_detail": "Marie Kučerová owes 150 CZK",
           "outcome_at": datetime.now(UTC)}
    )  # fmt: skip
    body = webhook_body(with_detail, datetime.now(UTC)).decode()
    assert "Kučerová" not in body and "has_debt" in body


def test_a_url_that_is_not_http_is_refused_saying_what_to_write(stocked: Workspace) -> None:
    for url in ("ftp://ils.example.org/x", "https://", "https://user:pw@ils.example.org/x", "ils.example.org"):
        result = kodex("webhooks", "set", "--library", LIBRARY, "--url", url)
        assert result.exit_code == 2, url
        assert "e.g. https://" in result.output
    with stocked.engine.connect() as connection:
        assert webhook_of(connection, LIBRARY) is None


# -- connectors ------------------------------------------------------------------------------------------------------


class FakeConnector:
    """Carries out `anonymise` (answering from `answers` in turn), nothing else."""

    system = "koha"

    def __init__(self, *answers: Carried) -> None:
        self.answers = list(answers)
        self.given: list[str] = []

    def can(self, action: str) -> bool:
        return action == "anonymise"

    def carry_out(self, instruction: Instruction) -> Carried:
        self.given.append(instruction.id)
        return self.answers.pop(0) if self.answers else Carried("done")

    def check(self) -> list[Check]:
        return []

    def close(self) -> None:
        pass


def test_a_connector_carries_out_what_it_can_and_its_results_are_outcomes(
    stocked: Workspace, ruleset: Ruleset, receiver: Receiver
) -> None:
    anonymise = [i for i in pending(stocked, ruleset) if i.action == "anonymise"]
    assert len(anonymise) >= 3
    connector = FakeConnector(
        Carried("rejected", code="has_debt"), Carried("retry", code="503", retry_after=600), Carried("done")
    )
    summary = deliver(stocked.engine, ruleset, stocked.master, LIBRARY, now=soon(), connector=connector)
    assert connector.given == [i.id for i in anonymise]  # no webhook: only what the connector can do was read
    assert (summary.rejected, summary.retried, summary.carried_out) == (1, 1, len(anonymise) - 2)
    states = [row(stocked, i.id) for i in anonymise[:3]]
    assert (states[0].state, states[0].outcome_code, states[0].outcome_by) == ("rejected", "has_debt", "connector")
    assert states[1].state == "pending" and states[1].last_error == "koha: 503"
    assert aware(states[1].next_attempt_at) >= soon() + timedelta(seconds=590)
    assert (states[2].state, states[2].outcome_by) == ("done", "connector")
    assert receiver.got == []
    others = [i for i in pending(stocked, ruleset) if i.action != "anonymise"]
    assert others and all(row(stocked, i.id).attempts == 0 for i in others)  # left for the pull


# -- one deliverer at a time; the relay ------------------------------------------------------------------------------


def test_while_another_process_delivers_a_library_deliver_sends_nothing(
    stocked: Workspace, ruleset: Ruleset, receiver: Receiver
) -> None:
    set_hook(receiver.url)
    with library_lock(stocked.engine, relay_lock(LIBRARY), "another-process"):
        result = kodex("instructions", "deliver", "--library", LIBRARY)
        assert result.exit_code != 0 and "another process is delivering" in result.output
        assert Relay(stocked, ruleset).once() == {}  # the relay skips it this turn
    assert receiver.got == []
    assert deliver_due(stocked, ruleset, LIBRARY).delivered > 0


def test_the_relay_delivers_for_the_libraries_with_a_webhook(
    stocked: Workspace, ruleset: Ruleset, receiver: Receiver
) -> None:
    set_hook(receiver.url)
    relay = Relay(stocked, ruleset)
    try:
        done = relay.once()
    finally:
        relay.close()
    assert list(done) == [LIBRARY] and done[LIBRARY].delivered == len(receiver.got) > 0


# -- over HTTP -------------------------------------------------------------------------------------------------------


def test_only_the_librarys_admin_may_set_its_webhook_over_http(workspace: Workspace, ruleset: Ruleset) -> None:
    app = create_app(workspace, ruleset)
    body = {"url": "https://ils.example.org/kodex/instructions"}
    tokens = {role: add_user(workspace.engine, workspace.master, LIBRARY, role, role)[1]
              for role in ("library_admin", "librarian", "dpo", "auditor", "director")}  # fmt: skip
    other_admin = add_user(workspace.engine, workspace.master, OTHER, "library_admin", "other")[1]
    for role in ("librarian", "dpo", "auditor", "director"):
        assert client(app, tokens[role]).put(f"/v1/libraries/{LIBRARY}/webhook", json=body).status_code == 403, role
    assert client(app, other_admin).put(f"/v1/libraries/{LIBRARY}/webhook", json=body).status_code == 403
    with workspace.engine.connect() as connection:
        assert webhook_of(connection, LIBRARY) is None
    answer = client(app, tokens["library_admin"]).put(f"/v1/libraries/{LIBRARY}/webhook", json=body)
    assert answer.status_code == 200
    assert answer.json()["url"] == body["url"] and answer.json()["secret"].startswith("whsec_")
    assert answer.headers["cache-control"] == "no-store"
    with workspace.engine.connect() as connection:
        hook = webhook_of(connection, LIBRARY)
    assert hook.url == body["url"]
    assert base64.b64decode(answer.json()["secret"].removeprefix("whsec_")) not in bytes(hook.secret)  # wrapped


def test_a_webhook_body_with_unknown_keys_or_a_bad_url_is_refused(workspace: Workspace, ruleset: Ruleset) -> None:
    app = create_app(workspace, ruleset)
    admin = client(app, add_user(workspace.engine, workspace.master, LIBRARY, "library_admin", "admin")[1])
    url = "https://ils.example.org/kodex/instructions"
    assert admin.put(f"/v1/libraries/{LIBRARY}/webhook", json={"url": url, "secret": "mine"}).status_code == 422
    refused = admin.put(f"/v1/libraries/{LIBRARY}/webhook", json={"url": "gopher://ils.example.org/"})
    assert refused.status_code == 422 and "https://" in refused.json()["detail"]


def test_setting_the_webhook_again_makes_a_new_secret_and_enables_it(
    stocked: Workspace, ruleset: Ruleset, receiver: Receiver, tmp_path: Path
) -> None:
    first = set_hook(receiver.url)
    receiver.script = [(410, {})]
    deliver(stocked.engine, ruleset, stocked.master, LIBRARY, now=soon(), limit=1)
    second = set_hook(receiver.url)
    assert second != first
    summary = deliver(stocked.engine, ruleset, stocked.master, LIBRARY, now=soon(), limit=1)
    assert summary.delivered == 1
    verified(second, receiver.got[-1])
