"""Oversized bodies and malformed JSON get 4xx with a clear message; nothing partial is stored from a rejected import;
tokens never appear in logs; no personal data in error responses or server logs.

In process (TestClient over an installation whose kodex.toml sets `max_request_mb = 1`): the refusals, each with
its Problem body, and the store counted after each refused import. Then the same bad requests, full of planted
personal values (names, e-mail addresses, phone numbers, card-number ids), with every logger at DEBUG; and a real
`kodex serve` in a subprocess, driven over HTTP, whose stdout and stderr are searched for the tokens, the planted
values and the reader ids, as are the bodies of its error answers.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from kodex.api.web import create_app
from kodex.rules.ruleset import Ruleset
from kodex.services.tenants import onboard
from kodex.services.users import add_user
from kodex.store.schema import camera_recordings, readers
from tests import support
from tests.audit.test_no_personal_data import leaks
from tests.support import (
    KODEX,
    free_port,
    fresh_installation,
    fresh_store,
    installation_env,
    ok_process,
    wait_for_health,
)

LIMIT_MB = 1
LIMIT = LIMIT_MB * 1024 * 1024


# -- planted personal data -----------------------------------------------------------------------------------------


def reader(card: str, born: str, personal: dict[str, str], library: str = "svkpk") -> dict[str, Any]:
    return {"type": "reader", "library": library, "id": card, "kind": "person", "birth_date": born,
            "renewed_at": "2026-06-01", "debt": 0, "active_loans": 0, "personal": personal}  # fmt: skip


KVAPILOVA = reader("SV-SECRET-77", "1961-03-17", {
    "first_name": "Radomíra", "last_name": "Kvapilová", "address": "Tylova 1234/56, Plzeň",
    "email": "radomira.kvapilova@secret-example.cz", "phone": "+420 777 000 177", "id_document": "OP 917735542"})  # fmt: skip
ZACHARIAS = reader("SV-SECRET-78", "1988-11-02", {
    "first_name": "Bohuslav", "last_name": "Zachariáš", "address": "Nerudova 77, Plzeň",
    "email": "bohuslav.zacharias@secret-example.cz", "phone": "+420 603 111 278"})  # fmt: skip
PLANTED = [KVAPILOVA, ZACHARIAS]
# Values that appear only in the bad requests (never stored): a name in a path, an unknown key, an invalid line.
STRAY_NAME = "Vendula Šťastná-Hrbková"
STRAY_EMAIL = "vendula.hrbkova@secret-example.cz"
STRAY_CARD = "SV-SECRET-79"


def personal_values() -> set[str]:
    """Everything planted that names or identifies a person: reader ids, birth dates, names, contacts."""
    values = {STRAY_NAME, STRAY_EMAIL, STRAY_CARD}
    for record in PLANTED:
        values |= {record["id"], record["birth_date"], *record["personal"].values()}
    return values


def lines(*records: dict[str, Any]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")


def fresh(card: str, library: str = "svkpk") -> dict[str, Any]:
    """A valid reader no other test imports (each test counts its own ids in the store)."""
    return reader(card, "1990-05-05", {"first_name": "Test", "last_name": card}, library)


# -- the installation in process ------------------------------------------------------------------------------------


class Installation(support.Installation):
    """tokens: "librarian", "dpo", "kntb librarian" → token; a client is the librarian's unless another is named."""

    def client(self, who: str = "librarian") -> TestClient:
        return super().client(who)

    def stored(self, table: Any, ids: list[str]) -> int:
        with self.work.engine.connect() as connection:
            return connection.execute(select(func.count()).select_from(table).where(table.c.id.in_(ids))).scalar_one()


def limit_requests_to_one_mib(settings_file: Path) -> None:
    """`max_request_mb = 1` at the top of the kodex.toml `kodex init` wrote (its [schedule] table comes after)."""
    settings_file.write_text(f"max_request_mb = {LIMIT_MB}\n" + settings_file.read_text(encoding="utf-8"), "utf-8")


@pytest.fixture(scope="module")
def installation(tmp_path_factory: pytest.TempPathFactory, ruleset: Ruleset) -> Iterator[Installation]:
    """svkpk with its agreement, kntb onboarded without one; bodies limited to 1 MiB."""
    home = tmp_path_factory.mktemp("bad-input")
    with fresh_installation(home, ruleset, agreements=["svkpk"], configure=limit_requests_to_one_mib) as (work, _):
        assert work.settings.max_request_mb == LIMIT_MB
        onboard(work.engine, ruleset, "kntb")  # no agreement: it takes no personal data
        tokens = {
            "librarian": add_user(work.engine, work.master, "svkpk", "librarian", "Librarian L")[1],
            "dpo": add_user(work.engine, work.master, "svkpk", "dpo", "Officer D")[1],
            "kntb librarian": add_user(work.engine, work.master, "kntb", "librarian", "Librarian K")[1],
        }
        yield Installation(work, create_app(work, ruleset), tokens)


def is_problem(body: Any) -> bool:
    return isinstance(body, dict) and set(body) == {"title", "detail", "errors"} and bool(body["detail"])


def chunks(data: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    """The body as a stream: sent chunked, without a Content-Length."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


def over_the_limit(*cards: str) -> bytes:
    """Valid records, padded with blank lines (which an import skips) past the limit."""
    body = lines(*(fresh(card) for card in cards))
    return body + b"\n" * (LIMIT + 1 - len(body))


# -- oversized bodies -----------------------------------------------------------------------------------------------


def test_a_body_over_the_limit_with_its_content_length_gets_413_saying_the_limit(installation: Installation) -> None:
    cards = ["SV-BIG-1", "SV-BIG-2"]
    body = over_the_limit(*cards)
    assert len(body) == LIMIT + 1

    response = installation.client().post("/v1/libraries/svkpk/records", content=body)

    assert response.request.headers["content-length"] == str(LIMIT + 1)
    assert response.status_code == 413
    problem = response.json()
    assert is_problem(problem)
    assert problem["title"] == "request too large"
    assert f"over {LIMIT_MB} MiB" in problem["detail"]
    assert installation.stored(readers, cards) == 0


@pytest.mark.parametrize("endpoint", ["records", "requests"])
def test_a_streamed_body_over_the_limit_gets_413_saying_the_limit(installation: Installation, endpoint: str) -> None:
    cards = [f"SV-STREAM-{endpoint}"]
    body = over_the_limit(*cards)
    headers = {"Content-Type": "application/json"} if endpoint == "requests" else {}

    response = installation.client().post(f"/v1/libraries/svkpk/{endpoint}", content=chunks(body), headers=headers)

    assert "content-length" not in response.request.headers  # sent chunked
    assert installation.stored(readers, cards) == 0
    assert response.status_code == 413, response.text
    assert is_problem(response.json())
    assert f"over {LIMIT_MB} MiB" in response.json()["detail"]


def test_a_body_just_under_the_limit_is_taken(installation: Installation) -> None:
    cards = ["SV-UNDER-1"]
    body = lines(fresh(cards[0]))
    body += b"\n" * (LIMIT - len(body))

    response = installation.client().post("/v1/libraries/svkpk/records", content=body)

    assert response.status_code == 200, response.text
    assert response.json()["added"] == {"reader": 1}
    assert installation.stored(readers, cards) == 1


# -- malformed bodies -----------------------------------------------------------------------------------------------


def test_malformed_json_on_a_json_endpoint_gets_422_naming_the_problem(installation: Installation) -> None:
    response = installation.client("dpo").post(
        "/v1/libraries/svkpk/requests",
        content=b'{"reader": "SV-SECRET-77", "kind": ',
        headers={"Content-Type": "application/json"},
    )

    assert response.status_code == 422
    problem = response.json()
    assert is_problem(problem)
    assert "JSON decode error" in problem["detail"]
    assert problem["errors"][0]["field"].startswith("body")
    assert "SV-SECRET-77" not in response.text


@pytest.mark.parametrize(
    ("who", "path"),
    [("dpo", "/v1/libraries/svkpk/requests"), ("librarian", "/v1/libraries/svkpk/camera-recordings")],
    ids=["requests", "camera-recordings"],
)
def test_a_json_body_that_is_not_utf8_gets_422_naming_the_problem(
    installation: Installation, who: str, path: str
) -> None:
    body = '{"reader": "Kvapilová", "kind": "erasure"}'.encode("latin-1")

    response = installation.client(who).post(path, content=body, headers={"Content-Type": "application/json"})

    assert response.status_code == 422, response.text
    assert is_problem(response.json())
    assert "body" in response.json()["detail"]


def test_an_import_body_that_is_not_utf8_gets_422_and_stores_nothing(installation: Installation) -> None:
    record = fresh("SV-LATIN-1")
    record["personal"]["last_name"] = "Kvapilová"

    response = installation.client().post(
        "/v1/libraries/svkpk/records", content=json.dumps(record, ensure_ascii=False).encode("latin-1")
    )

    assert response.status_code == 422
    assert is_problem(response.json())
    assert "not UTF-8" in response.json()["detail"]
    assert installation.stored(readers, ["SV-LATIN-1"]) == 0


# -- imports: all or nothing ----------------------------------------------------------------------------------------


def test_an_import_with_one_invalid_line_gets_422_naming_the_line_and_field_and_stores_none_of_the_file(
    installation: Installation,
) -> None:
    cards = ["SV-ALL-1", "SV-ALL-2", "SV-ALL-3", "SV-ALL-4"]
    records = [fresh(card) for card in cards]
    records[2]["birth_date"] = "17. 3. 1961"  # line 3
    recording = {"type": "camera_recording", "library": "svkpk", "id": "cam-all-1", "camera": "entrance",
                 "start": "2026-11-20T10:00:00+01:00", "end": "2026-11-20T11:00:00+01:00",
                 "location": "/var/cctv/svkpk/all-1.mp4", "legal_hold": None}  # fmt: skip

    response = installation.client().post("/v1/libraries/svkpk/records", content=lines(*records, recording))

    assert response.status_code == 422
    problem = response.json()
    assert is_problem(problem)
    assert problem["title"] == "invalid records"
    assert problem["detail"].startswith("line 3: birth_date: ")
    assert [(e["line"], e["field"]) for e in problem["errors"]] == [(3, "birth_date")]
    assert "17. 3. 1961" not in response.text
    assert installation.stored(readers, cards) == 0
    assert installation.stored(camera_recordings, ["cam-all-1"]) == 0


def test_with_skip_invalid_the_valid_lines_are_stored_and_the_invalid_one_reported(installation: Installation) -> None:
    cards = ["SV-SKIP-1", "SV-SKIP-2", "SV-SKIP-3"]
    records = [fresh(card) for card in cards]
    records[1]["debt"] = "a lot"  # line 2

    response = installation.client().post(
        "/v1/libraries/svkpk/records", params={"skip_invalid": "true"}, content=lines(*records)
    )

    assert response.status_code == 200, response.text
    result = response.json()
    assert result["added"] == {"reader": 2}
    assert [(s["line"], s["field"]) for s in result["skipped"]] == [(2, "debt")]
    assert all(s["message"] for s in result["skipped"])
    assert installation.stored(readers, ["SV-SKIP-1", "SV-SKIP-3"]) == 2
    assert installation.stored(readers, ["SV-SKIP-2"]) == 0


def test_an_import_for_a_library_without_an_agreement_gets_409_and_stores_nothing(installation: Installation) -> None:
    cards = ["KN-NOAGREE-1", "KN-NOAGREE-2"]

    response = installation.client("kntb librarian").post(
        "/v1/libraries/kntb/records", content=lines(*(fresh(card, "kntb") for card in cards))
    )

    assert response.status_code == 409
    problem = response.json()
    assert is_problem(problem)
    assert problem["title"] == "no data-processing agreement"
    assert "kntb" in problem["detail"]
    assert installation.stored(readers, cards) == 0


def test_a_record_of_another_library_in_the_body_gets_422_naming_its_line_and_stores_nothing(
    installation: Installation,
) -> None:
    records = [fresh("SV-OTHER-1"), fresh("KN-OTHER-2", "kntb"), fresh("SV-OTHER-3")]

    response = installation.client().post("/v1/libraries/svkpk/records", content=lines(*records))

    assert response.status_code == 422
    problem = response.json()
    assert is_problem(problem)
    assert (2, "library") in [(e["line"], e["field"]) for e in problem["errors"]]
    assert installation.stored(readers, ["SV-OTHER-1", "KN-OTHER-2", "SV-OTHER-3"]) == 0


def test_an_import_line_with_an_unknown_key_named_after_a_person_does_not_echo_the_key(
    installation: Installation,
) -> None:
    record = {**fresh("SV-UNKNOWN-1"), STRAY_NAME: STRAY_EMAIL}

    response = installation.client().post("/v1/libraries/svkpk/records", content=lines(record))

    assert response.status_code == 422
    assert installation.stored(readers, ["SV-UNKNOWN-1"]) == 0
    assert leaks(response.text, {STRAY_NAME, STRAY_EMAIL}) == set()


# -- nothing personal and no token in what the service answers to bad requests or logs ------------------------------


@dataclass
class Exchange:
    """What a scenario sent (URL, headers and body, as text) and every answer it got."""

    sent: list[str] = field(default_factory=list)
    answers: list[tuple[str, httpx.Response]] = field(default_factory=list)
    bad: list[tuple[str, httpx.Response]] = field(default_factory=list)  # the answers to the bad requests

    def record(self, request: httpx.Request) -> None:
        headers = "\n".join(f"{name}: {value}" for name, value in request.headers.items())
        try:
            body = request.content.decode("utf-8", errors="replace")
        except httpx.RequestNotRead:  # a streamed body: its chunks carry nothing searched for
            body = ""
        self.sent.append(f"{request.method} {unquote(str(request.url))}\n{headers}\n{body}")


def scenario(client: Callable[[str], httpx.Client], exchange: Exchange) -> None:
    """Import the planted readers, ask about them, then send bad requests that carry personal values."""

    def send(what: str, who: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = client(who).request(method, path, **kwargs)
        exchange.answers.append((what, response))
        return response

    card, other = KVAPILOVA["id"], ZACHARIAS["id"]
    json_ = {"Content-Type": "application/json"}
    # the planted readers, and what a librarian and the dpo may ask about them
    assert send("import", "librarian", "POST", "/v1/libraries/svkpk/records", content=lines(*PLANTED)).is_success
    for path in (f"readers/{card}", f"readers/{card}/explanation", f"readers/{other}"):
        assert send(f"GET {path}", "librarian", "GET", f"/v1/libraries/svkpk/{path}").is_success
    assert send("access copy", "dpo", "GET", f"/v1/libraries/svkpk/readers/{card}/access-copy").is_success
    assert send("erasure request", "dpo", "POST", "/v1/libraries/svkpk/requests",
                json={"reader": other, "kind": "erasure"}).is_success  # fmt: skip
    # bad requests that carry personal values
    invalid = {**KVAPILOVA, "id": STRAY_CARD, "birth_date": STRAY_NAME,
               "personal": {**KVAPILOVA["personal"], "e-mail": STRAY_EMAIL}}  # fmt: skip
    bad = [
        ("invalid line", "librarian", "POST", "/v1/libraries/svkpk/records", {"content": lines(KVAPILOVA, invalid)}),
        ("invalid line, skipped", "librarian", "POST", "/v1/libraries/svkpk/records",
         {"content": lines(invalid), "params": {"skip_invalid": "true"}}),
        ("record of another library", "librarian", "POST", "/v1/libraries/svkpk/records",
         {"content": lines({**ZACHARIAS, "library": "kntb"})}),
        ("import not UTF-8", "librarian", "POST", "/v1/libraries/svkpk/records",
         {"content": lines(KVAPILOVA).decode().encode("latin-1", "replace")}),
        ("unknown key named after a person", "dpo", "POST", "/v1/libraries/svkpk/requests",
         {"json": {"reader": card, "kind": "erasure", STRAY_NAME: STRAY_EMAIL}}),
        ("a name where an id goes", "dpo", "POST", "/v1/libraries/svkpk/requests",
         {"json": {"reader": STRAY_NAME, "kind": "erasure"}}),
        ("an e-mail where a kind goes", "dpo", "POST", "/v1/libraries/svkpk/requests",
         {"json": {"reader": card, "kind": STRAY_EMAIL}}),
        ("malformed JSON", "dpo", "POST", "/v1/libraries/svkpk/requests",
         {"content": f'{{"reader": "{STRAY_CARD}", "kind": "{STRAY_EMAIL}"'.encode(), "headers": json_}),
        ("a hold whose reason names a person, on an unknown reader", "dpo", "PUT",
         f"/v1/libraries/svkpk/readers/{STRAY_CARD}/legal-hold", {"json": {"reason": f"police: {STRAY_NAME}"}}),
        ("a name in the path", "librarian", "GET", f"/v1/libraries/svkpk/readers/{quote(STRAY_NAME)}", {}),
        ("a name in the path, explained", "librarian", "GET",
         f"/v1/libraries/svkpk/readers/{quote(STRAY_NAME)}/explanation", {}),
        ("an e-mail in the path, access copy", "dpo", "GET",
         f"/v1/libraries/svkpk/readers/{quote(STRAY_EMAIL)}/access-copy", {}),
        ("a card of another library's reader", "librarian", "GET", f"/v1/libraries/kntb/readers/{card}", {}),
        ("not the dpo: access copy", "librarian", "GET", f"/v1/libraries/svkpk/readers/{card}/access-copy", {}),
        ("a bad as_of", "librarian", "GET", f"/v1/libraries/svkpk/readers/{card}/explanation",
         {"params": {"as_of": KVAPILOVA["personal"]["phone"]}}),
        ("over the limit", "librarian", "POST", "/v1/libraries/svkpk/records",
         {"content": lines(*PLANTED) + b"\n" * LIMIT}),
        ("over the limit, streamed", "librarian", "POST", "/v1/libraries/svkpk/records",
         {"content": chunks(lines(*PLANTED) + b"\n" * LIMIT)}),
        ("no token", "nobody", "GET", f"/v1/libraries/svkpk/readers/{card}", {}),
    ]  # fmt: skip
    for what, who, method, path, kwargs in bad:
        response = send(what, who, method, path, **kwargs)
        exchange.bad.append((what, response))
        assert response.status_code >= 400 or what == "invalid line, skipped", (what, response.status_code)


def assert_sent(exchange: Exchange, secrets: set[str], tokens: set[str]) -> None:
    """The scenario really sent every value searched for (so the searches below can fail)."""
    sent = "\n".join(exchange.sent)
    assert leaks(sent, secrets) == secrets
    assert all(token in sent for token in tokens)


def assert_no_bad_request_answer_echoes(exchange: Exchange, secrets: set[str], tokens: set[str]) -> None:
    """No answer to a bad request holds a planted value or a token; each error is a Problem saying what is wrong."""
    assert len(exchange.bad) >= 15
    echoed = {(what, value) for what, r in exchange.bad for value in leaks(r.text, secrets | tokens)}
    assert echoed == set()
    assert all(is_problem(r.json()) for _, r in exchange.bad if r.status_code >= 400)


def the_services(record: logging.LogRecord) -> bool:
    """Whether the service logged it: not the test's own HTTP client, nor SQLAlchemy's echo of the rows it fetches.

    SQLAlchemy logs each row it fetches at DEBUG, store columns and all (readers.id is the card number), if its
    logger is set to DEBUG; kodex never sets it (SQLAlchemy keeps its loggers at WARNING unless told otherwise), and
    the statements it logs at INFO carry no parameters (the engines are made with hide_parameters=True).
    """
    client = record.name.split(".")[0] in {"httpx", "httpcore"}
    fetched_rows = record.name.startswith("sqlalchemy.engine") and record.levelno == logging.DEBUG
    return not client and not fetched_rows


def test_no_token_or_personal_value_is_in_what_the_app_logs_at_debug_or_answers_to_bad_requests(
    installation: Installation, caplog: pytest.LogCaptureFixture
) -> None:
    for name in ["", *logging.root.manager.loggerDict]:  # every logger, the root and sqlalchemy's too, at DEBUG
        caplog.set_level(logging.DEBUG, logger=name or None)
    exchange = Exchange()
    clients: dict[str, TestClient] = {}

    def client(who: str) -> httpx.Client:
        if who not in clients:
            clients[who] = (
                installation.client(who)
                if who != "nobody"
                else TestClient(installation.app, raise_server_exceptions=False)
            )
            clients[who].event_hooks["request"].append(exchange.record)
        return clients[who]

    scenario(client, exchange)

    secrets, tokens = personal_values(), set(installation.tokens.values())
    assert_sent(exchange, secrets, tokens - {installation.tokens["kntb librarian"]})
    records = [r for r in caplog.records if the_services(r)]
    logged = "\n".join(f"{r.name} {r.getMessage()} {r.args!r} {r.exc_info} {r.exc_text}" for r in records)
    assert {"kodex.access", "sqlalchemy.engine.Engine"} <= {r.name for r in records}  # it logged, at every level
    assert leaks(logged, secrets | tokens) == set()
    assert_no_bad_request_answer_echoes(exchange, secrets, tokens)


# -- the same against `kodex serve` ---------------------------------------------------------------------------------


@dataclass
class Server:
    url: str
    tokens: dict[str, str]
    exchange: Exchange
    stdout: str
    stderr: str


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`kodex init`, svkpk's agreement, a librarian and a dpo, then `kodex serve` driven through the scenario."""
    home = tmp_path_factory.mktemp("serve")
    with fresh_store(home) as url, pytest.MonkeyPatch.context() as patch:
        env = {**os.environ, **installation_env(home, url, patch)}
        ok_process(["init"], env)
        limit_requests_to_one_mib(home / "home" / "kodex.toml")
        ok_process(["libraries", "agreement", "svkpk", "--signed", "2026-01-05", "--reference", "X"], env)
        tokens = {}
        for role, name in (("librarian", "L"), ("dpo", "D")):
            printed = ok_process(["users", "add", "--library", "svkpk", "--role", role, "--name", name], env).stdout
            assert printed.count("\n") == 1 and printed.startswith("kodex_")  # the token, alone on stdout
            tokens[role] = printed.strip()
        port = free_port()
        out, err = home / "serve.stdout", home / "serve.stderr"
        with out.open("wb") as stdout, err.open("wb") as stderr:
            process = subprocess.Popen(
                [str(KODEX), "serve", "--no-scheduler", "--port", str(port)], env=env, stdout=stdout, stderr=stderr
            )
        base = f"http://127.0.0.1:{port}"
        exchange = Exchange()
        try:
            wait_for_health(base, process)
            clients: dict[str, httpx.Client] = {}

            def client(who: str) -> httpx.Client:
                if who not in clients:
                    headers = {"Authorization": f"Bearer {tokens[who]}"} if who in tokens else {}
                    clients[who] = httpx.Client(base_url=base, headers=headers, timeout=60,
                                                event_hooks={"request": [exchange.record]})  # fmt: skip
                return clients[who]

            scenario(client, exchange)
            for opened in clients.values():
                opened.close()
        finally:
            process.terminate()
            process.wait(timeout=30)
        yield Server(base, tokens, exchange, out.read_text("utf-8", "replace"), err.read_text("utf-8", "replace"))


def test_kodex_serve_was_sent_every_planted_value_and_token_and_logged_the_requests(server: Server) -> None:
    assert_sent(server.exchange, personal_values(), set(server.tokens.values()))
    assert len(server.exchange.answers) >= 20
    logged = server.stdout + server.stderr
    assert "kodex.access" in logged
    assert logged.count("/v1/libraries/{library}/readers/{reader_id}") >= 4  # by route template, not by path


def test_kodex_serve_logs_no_token_no_personal_value_and_no_reader_id(server: Server) -> None:
    secrets = personal_values() | set(server.tokens.values())

    assert leaks(server.stdout, secrets) == set()
    assert leaks(server.stderr, secrets) == set()


def test_no_error_answer_of_kodex_serve_echoes_a_personal_value_or_token(server: Server) -> None:
    assert_no_bad_request_answer_echoes(server.exchange, personal_values(), set(server.tokens.values()))


def answer(server: Server, what: str) -> httpx.Response:
    return next(response for said, response in server.exchange.bad if said == what)


def test_kodex_serve_refuses_a_body_over_the_limit_by_its_content_length_with_413(server: Server) -> None:
    response = answer(server, "over the limit")

    assert response.status_code == 413
    assert f"over {LIMIT_MB} MiB" in response.json()["detail"]


def test_kodex_serve_names_no_server_and_says_its_answers_are_not_to_be_stored(server: Server) -> None:
    for _, response in server.exchange.bad:
        assert "server" not in response.headers
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["x-content-type-options"] == "nosniff"


def test_kodex_serve_refuses_a_streamed_body_over_the_limit_with_413(server: Server) -> None:
    response = answer(server, "over the limit, streamed")

    assert response.status_code == 413, response.text
