"""The door of /v1 (api/door.py): the token is checked before the body, and failed tokens are slowed (issue 16).

Every POST and PUT route of the app's route table is sent a malformed body without a token, and with an unknown
one: each gets 401, never the 422 that would tell a stranger what the body should hold. Then the throttle (api/
throttle.py), on a clock the test moves: the eleventh unknown token from one address gets 429 with Retry-After, and
so does a good token from that address while it waits; another address is not affected; the log line of a failure
names the address and the route template, never the token or the path's values.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from kodex.api.routes import log_routes, policy_routes, record_routes, run_routes, subject_routes, tenant_routes
from kodex.api.throttle import FAILED_TOKEN_INTERVAL, FAILED_TOKENS_BURST, FailedTokens
from kodex.api.web import create_app
from kodex.config import load_settings
from kodex.rules.ruleset import Ruleset
from kodex.services.setup import Workspace, initialise, open_workspace
from kodex.services.tenants import Agreement, onboard
from kodex.services.users import add_user
from tests.support import fresh_store, installation_env

ATTACKER, OFFICE = ("192.0.2.66", 40000), ("198.51.100.7", 40000)
READER = "SV-CARD-4711"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Door:
    work: Workspace
    app: FastAPI
    clock: Clock
    dpo: str

    def client(self, address: tuple[str, int], token: str | None) -> TestClient:
        client = TestClient(self.app, raise_server_exceptions=False, client=address)
        if token is not None:
            client.headers["Authorization"] = f"Bearer {token}"
        return client


@pytest.fixture
def door(tmp_path_factory: pytest.TempPathFactory, ruleset: Ruleset) -> Iterator[Door]:
    home = tmp_path_factory.mktemp("door")
    with fresh_store(home) as url, pytest.MonkeyPatch.context() as patch:
        installation_env(home, url, patch)
        initialise(load_settings(), ruleset)
        work = open_workspace(load_settings())
        onboard(work.engine, ruleset, "svkpk", Agreement(date(2026, 1, 5), "DPA-T-1"))
        dpo = add_user(work.engine, work.master, "svkpk", "dpo", "Officer D")[1]
        clock = Clock()
        yield Door(work, create_app(work, ruleset, failed_tokens=FailedTokens(clock=clock)), clock, dpo)
        work.engine.dispose()


def writing_routes() -> list[tuple[str, str]]:
    """(METHOD, path with its parameters filled in) of every POST and PUT route, from the routers the app includes."""
    found = []
    for module in (tenant_routes, record_routes, subject_routes, run_routes, log_routes, policy_routes):
        for route in module.router.routes:
            assert isinstance(route, APIRoute)
            for method in sorted(route.methods & {"POST", "PUT"}):
                path = re.sub(r"\{kind\}", "readers", "/v1" + route.path)
                found.append((method, re.sub(r"\{library\}", "svkpk", re.sub(r"\{(?!library)\w+\}", "X-1", path))))
    return found


WRITING = writing_routes()


def test_the_route_table_has_the_writing_routes_the_test_drives() -> None:
    assert len(WRITING) >= 10
    assert ("POST", "/v1/libraries/svkpk/records") in WRITING
    assert ("PUT", "/v1/libraries/svkpk/readers/X-1/legal-hold") in WRITING


@pytest.mark.parametrize(("method", "path"), WRITING, ids=[f"{m} {p}" for m, p in WRITING])
@pytest.mark.parametrize("token", [None, "kodex_unknown"], ids=["no token", "unknown token"])
def test_a_malformed_body_without_a_valid_token_gets_401_not_422(
    door: Door, method: str, path: str, token: str | None
) -> None:
    client = door.client(OFFICE, token)
    response = client.request(
        method, path, content=b'{"reader": [unclosed', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert set(response.json()) == {"title", "detail", "errors"}


def test_the_eleventh_unknown_token_from_one_address_gets_429_and_a_good_token_elsewhere_still_works(
    door: Door, caplog: pytest.LogCaptureFixture
) -> None:
    guessing = f"/v1/libraries/svkpk/readers/{READER}"
    guesses = [f"kodex_guess_{n:04d}" for n in range(FAILED_TOKENS_BURST + 1)]
    with caplog.at_level(logging.WARNING, logger="kodex.auth"):
        answers = [door.client(ATTACKER, guess).get(guessing).status_code for guess in guesses]
    assert answers == [401] * FAILED_TOKENS_BURST + [429]

    throttled = door.client(ATTACKER, door.dpo).get(guessing)  # while it waits, a good token from there waits too
    assert throttled.status_code == 429
    assert throttled.headers["Retry-After"] == str(int(FAILED_TOKEN_INTERVAL))
    assert throttled.json()["title"] == "too many failed tokens"
    assert door.client(OFFICE, door.dpo).get(guessing).status_code == 404  # another address: past the door

    door.clock.now += FAILED_TOKEN_INTERVAL  # one try comes back
    assert door.client(ATTACKER, "kodex_guess_again").get(guessing).status_code == 401
    assert door.client(ATTACKER, door.dpo).get(guessing).status_code == 429

    failures = [r.getMessage() for r in caplog.records if r.name == "kodex.auth"]
    assert len(failures) == FAILED_TOKENS_BURST + 1  # the ten, and the one try that came back; no 429 was looked at
    for line in failures:
        assert (
            line
            == f"unknown or revoked token from {ATTACKER[0]} on GET /v1/libraries/{{library}}/readers/{{reader_id}}"
        )
    logged = "\n".join(failures)
    assert READER not in logged
    assert not any(guess in logged for guess in [*guesses, "kodex_guess_again", door.dpo])


def test_requests_without_a_token_spend_no_tries(door: Door) -> None:
    for _ in range(FAILED_TOKENS_BURST * 3):
        assert door.client(ATTACKER, None).get("/v1/policy").status_code == 401
    assert door.client(ATTACKER, door.dpo).get("/v1/policy").status_code == 200
