"""schemathesis against the OpenAPI schema: no 5xx, every response matches its schema.

The schema is loaded from the ASGI app itself (GET /openapi.json), and every operation in it is called with
data schemathesis generates from it, valid and invalid (its examples, coverage and fuzzing phases). Each call is
authenticated, since a request turned away at the door (401, 403) tests nothing behind it:

- as library users: each call carries the token of a svkpk role the operation's permission (api.auth.PERMISSIONS)
  allows, and names svkpk in the path; about every other call has a path id that exists (an imported reader or
  recording, the exception, the runs, a decision log entry, a user) and every fourth a body that gets past
  validation (the imported records, the project's policy, a stored reader), so the calls reach stored data and the
  work behind validation, not only 404s and 422s;
- as the operator: every call carries an operator's token, and the library in the path is generated freely.

Generated requests may well be refused (4xx); none may fail (5xx), and every answer must have a documented status,
content type and body (not_a_server_error, status_code_conformance, content_type_conformance,
response_schema_conformance).

The schema is read when the module is collected, from the app built over a placeholder workspace (the OpenAPI
document does not depend on the store: a test checks the real app serves the same one), and each call goes to the
app over the module's store. schemathesis.pytest.from_fixture would read it from the real app, but it does not
run on pytest 9.2 (it sets `Function._nodeid`, which pytest 9.2 no longer has).
"""

from __future__ import annotations

import inspect
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from types import SimpleNamespace
from typing import Any, cast
from zoneinfo import ZoneInfo

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import CHECKS as REGISTERED
from schemathesis.checks import load_all_checks, not_a_server_error
from schemathesis.generation.meta import CoveragePhaseData
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import select

from kodex.api.auth import PERMISSIONS
from kodex.api.routes import (
    instruction_routes,
    log_routes,
    policy_routes,
    record_routes,
    run_routes,
    subject_routes,
    tenant_routes,
)
from kodex.api.throttle import FailedTokens
from kodex.api.web import create_app
from kodex.config import load_settings
from kodex.retention.run import run_library
from kodex.rules.loading import load_policy
from kodex.rules.ruleset import Ruleset
from kodex.services.importing import import_records
from kodex.services.proposals import list_proposals
from kodex.services.setup import Workspace
from kodex.services.users import ROLES, add_user
from kodex.store.schema import decision_log
from tests.support import POLICY, ROOT, client, fresh_installation

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
LIBRARY = "svkpk"
PRAGUE = ZoneInfo("Europe/Prague")
SAMPLE = ROOT / "samples" / "readers.jsonl"
READERS = 12  # svkpk's first readers of the sample are imported (with their incidents), and one with an exception
# Which svkpk role calls an operation several roles may call: mostly the first of these the operation allows.
PREFERRED = ("dpo", "director", "librarian", "library_admin", "auditor", "scheduler")
HYPOTHESIS = settings(max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck))


# Bodies declared as text (`type: string`): JSON Lines records, a YAML policy. They go on the wire as the generated
# text, UTF-8 encoded. schemathesis has no serializer for JSON Lines (this one), and its YAML serializer would dump
# the text as a YAML document holding one string, so _call hands it the text's bytes, which it sends as they are.
TEXT_BODIES = ("application/x-ndjson", "application/yaml")


@schemathesis.serializer("application/x-ndjson")
def _json_lines(ctx: schemathesis.SerializationContext, value: Any) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value
    return (value if isinstance(value, str) else json.dumps(value)).encode("utf-8", errors="surrogatepass")


def _placeholder_app() -> FastAPI:
    """The app over no store: enough to serve its OpenAPI document, which names no stored value (only the policy's)."""
    nowhere = cast(Workspace, SimpleNamespace(settings=load_settings({"KODEX_HOME": "/nonexistent"})))
    return create_app(nowhere, Ruleset(load_policy(POLICY)))


SCHEMA_APP = _placeholder_app()
schema = schemathesis.openapi.from_asgi(
    "/openapi.json", SCHEMA_APP, config=schemathesis.Config.from_dict({"seed": 20260105})
)


# -- which operation each endpoint is authorised for ---------------------------------------------------------------


def _operations() -> dict[tuple[str, str], str]:
    """(METHOD, path) → the operation of api.auth.PERMISSIONS the endpoint checks its caller against."""
    found: dict[tuple[str, str], str] = {}
    for module in (
        tenant_routes,
        record_routes,
        subject_routes,
        run_routes,
        log_routes,
        policy_routes,
        instruction_routes,
    ):
        for route in module.router.routes:
            assert isinstance(route, APIRoute)
            stack = list(route.dependant.dependencies)
            while stack:
                dependency = stack.pop()
                stack.extend(dependency.dependencies)
                if getattr(dependency.call, "__closure__", None):  # for_library(...) and for_service(...) checks
                    operation = inspect.getclosurevars(dependency.call).nonlocals.get("operation")  # type: ignore[arg-type]
                    if operation is not None:
                        found.update({(method, "/v1" + route.path): operation for method in route.methods})
    return found


OPERATIONS = _operations()


def _role_for(method: str, path: str, pick: int) -> str | None:
    """A svkpk role the operation allows (None: only the operator may, or the endpoint takes no token)."""
    operation = OPERATIONS.get((method, path))
    allowed = [role for role in PREFERRED if operation is not None and role in PERMISSIONS[operation]]
    if not allowed:
        return None
    return allowed[0] if pick % 3 else allowed[pick % len(allowed)]


# -- the service: svkpk onboarded, records imported, a run done, a token for every role ------------------------------


@dataclass
class Service:
    app: FastAPI
    tokens: dict[str, str]  # role → token (svkpk's roles; "operator" for the service centre)
    known: dict[str, list[str]]  # path parameter → ids that exist
    sample: list[str]  # the lines imported


def _sample() -> list[str]:
    """svkpk's first readers of the sample with their incidents, a reader with an exception, camera recordings."""
    lines = [line for line in SAMPLE.read_text(encoding="utf-8").splitlines(keepends=True)
             if json.loads(line)["library"] == LIBRARY]  # fmt: skip
    records = [json.loads(line) for line in lines]
    wanted = {r["id"] for r in records if r["type"] == "reader"}
    wanted = {*sorted(wanted)[:READERS], *(r["subject"] for r in records if r["type"] == "exception")}
    recordings = [r["id"] for r in records if r["type"] == "camera_recording"][:3]
    return [
        line
        for line, r in zip(lines, records, strict=True)
        if r["id"] in wanted or r.get("reader") in wanted or r.get("subject") in wanted or r["id"] in recordings
    ]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, ruleset: Ruleset) -> Iterator[Service]:
    with fresh_installation(tmp_path_factory.mktemp("schema"), ruleset, agreements=[LIBRARY]) as (work, _):
        found = work.settings
        lines = _sample()
        imported = import_records(
            lambda: iter(lines), work.engine, ruleset, work.master, date(2026, 11, 21), recordings=found.recordings
        )
        assert (imported.added["reader"], imported.added["exception"]) == (READERS + 1, 1)
        night = datetime(2026, 11, 22, 2, 0, tzinfo=PRAGUE)
        done = run_library(
            work.engine, ruleset, work.master, LIBRARY, night, recordings_folder=found.recordings.folder(LIBRARY)
        )
        dry = run_library(work.engine, ruleset, work.master, LIBRARY, night, dry_run=True)
        tokens = {
            role: add_user(work.engine, work.master, None if role == "operator" else LIBRARY, role, f"schema {role}")[1]
            for role in ROLES
        }
        spare = [add_user(work.engine, work.master, LIBRARY, "auditor", f"spare {n}")[0].id for n in range(3)]
        with work.engine.connect() as connection:
            entries = list(connection.execute(select(decision_log.c.id).limit(3)).scalars())
        assert entries  # the run logged decisions: proofs of them can be asked for
        records = [json.loads(line) for line in lines]
        readers = [r["id"] for r in records if r["type"] == "reader"]
        known = {
            "reader_id": readers[:4],
            "subject": [*readers[4:7], *(r["id"] for r in records if r["type"] == "camera_recording")],
            "exception_id": [r["id"] for r in records if r["type"] == "exception"],
            "proposal_id": [p.id for p in list_proposals(work.engine, LIBRARY, None)][:3],
            "run_id": [done.run_id, dry.run_id],
            "entry_id": entries,
            "user_id": spare,
        }
        known = {name: ids for name, ids in known.items() if ids}
        # the checks send unknown tokens on purpose (ignored_auth), all from the one test client: without room for
        # them the failed-token throttle (tests/api/test_http_door.py) would answer 429 where 401 is expected
        app = create_app(work, ruleset, failed_tokens=FailedTokens(burst=1_000_000))
        yield Service(app, tokens, known, lines)


def _pick(case: schemathesis.Case) -> int:
    """A number fixed by the generated request: which role calls, and whether path ids are replaced by real ones.

    Derived from the request, not drawn, so a failing example replays (and shrinks) with the same caller.
    """
    seen = repr((sorted((case.path_parameters or {}).items()), case.query, case.body))
    return zlib.crc32(seen.encode("utf-8", errors="surrogatepass"))


def _realistic_body(service: Service, case: schemathesis.Case, pick: int) -> None:
    """Now and then a body that gets past validation: the sample's records, the project's policy, a stored reader."""
    if pick % 4:
        return
    if case.media_type == "application/x-ndjson":
        case.body = "".join(service.sample)
    elif case.media_type == "application/yaml":
        case.body = POLICY.read_text(encoding="utf-8")
    elif isinstance(case.body, dict):
        for key in ("reader", "subject"):
            if isinstance(case.body.get(key), str):
                case.body[key] = service.known["reader_id"][pick % 3]


def _call(service: Service, case: schemathesis.Case, role: str | None) -> None:
    headers = {"Authorization": f"Bearer {service.tokens[role]}"} if role is not None else None
    if case.media_type in TEXT_BODIES and isinstance(case.body, str):
        case.body = case.body.encode("utf-8", errors="surrogatepass")
    case.call_and_validate(app=service.app, headers=headers, checks=CHECKS)


# -- the tests ------------------------------------------------------------------------------------------------------


def test_the_schema_generated_from_is_the_one_the_service_serves(service: Service) -> None:
    assert service.app.openapi() == SCHEMA_APP.openapi()


def test_every_documented_operation_names_the_permission_it_is_authorised_for() -> None:
    documented = {(method.upper(), path) for path, ops in SCHEMA_APP.openapi()["paths"].items() for method in ops}
    assert documented - set(OPERATIONS) == {("GET", "/health")}  # the only endpoint that takes no token
    assert set(OPERATIONS) <= documented
    assert set(OPERATIONS.values()) == set(PERMISSIONS)  # every permission is some endpoint's


@HYPOTHESIS
@schema.parametrize()
def test_every_operation_called_by_a_library_user_it_allows_gets_no_5xx_and_answers_as_documented(
    case: schemathesis.Case, service: Service
) -> None:
    pick = _pick(case)
    role = _role_for(case.operation.method.upper(), case.operation.path, pick)
    if role is None and case.operation.path != "/health":
        role = "dpo"  # only the operator may call it: the answer is a 403, which must be documented too
    parameters = case.path_parameters or {}
    if "library" in parameters:
        parameters["library"] = LIBRARY  # any other library is refused (403) before anything else
    for name, ids in service.known.items():
        if name in parameters and pick % 2:
            parameters[name] = ids[pick % len(ids)]
    _realistic_body(service, case, pick)
    _call(service, case, role)


@HYPOTHESIS
@schema.parametrize()
def test_every_operation_called_by_the_operator_gets_no_5xx_and_answers_as_documented(
    case: schemathesis.Case, service: Service
) -> None:
    _call(service, case, "operator")


# -- the server answers what it declares: every check schemathesis has, as a dpo, an auditor and the operator ----------
#
# Called as the issue's attacker called it: the role's token (given through schemathesis' auth, so it knows the
# request is authenticated and sends no token, or a wrong one, only where it means to), svkpk in every path, and
# the generated data as they are. Every check runs: besides the four above, schema-valid requests accepted and
# schema-violating ones refused (so the schema must state every constraint the server enforces), an undeclared
# method answered 405 with Allow, a request without the token or with a wrong one refused, response headers
# conformance and the stateful ones (use after free, resource availability).

load_all_checks()
ALL_CHECKS = [check for check in REGISTERED.get_all() if not isinstance(check, type)]
DECLARED = settings(max_examples=12, deadline=None, database=None, suppress_health_check=list(HealthCheck))
declared = schemathesis.openapi.from_asgi(
    "/openapi.json",
    SCHEMA_APP,
    config=schemathesis.Config.from_dict(
        {
            "seed": 20261204,
            "parameters": {"path.library": LIBRARY},
            "operations": [
                {  # the one constraint JSON Schema cannot state: a candidate policy's meaning (known facts and
                    # actions, citations, rule ids of its library…). A diff of a candidate that does not check is
                    # refused 422 with its problems by line; POST /v1/policy/validation is where validity is asked.
                    "include-method": "POST",
                    "include-path": "/v1/libraries/{library}/policy/diff",
                    "checks": {
                        "positive_data_acceptance": {"expected-statuses": ["2xx", 401, 403, 404, 409, 422, 429]}
                    },
                }
            ],
        }
    ),
)
CALLER: dict[str, str] = {}  # the token the running test calls with


@declared.auth(refresh_interval=None)
class _RoleToken:
    def get(self, case: schemathesis.Case, ctx: Any) -> str:
        return CALLER.get("token", "")  # read again for every call (refresh_interval=None)

    def set(self, case: schemathesis.Case, data: str, ctx: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


def _declared(service: Service, case: schemathesis.Case, role: str) -> None:
    CALLER["token"] = service.tokens[role]
    coverage = getattr(case.meta.phase, "data", None) if case.meta else None
    if isinstance(coverage, CoveragePhaseData) and coverage.parameter != "Authorization":
        # the coverage phase's cases do not pass through the auth: each is given the token, but for the one that
        # leaves the header out on purpose
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {CALLER['token']}"}
    if case.media_type in TEXT_BODIES and isinstance(case.body, str):
        case.body = case.body.encode("utf-8", errors="surrogatepass")
    case.call_and_validate(app=service.app, checks=ALL_CHECKS)


@DECLARED
@declared.parametrize()
def test_the_server_answers_a_dpo_what_its_schema_declares(case: schemathesis.Case, service: Service) -> None:
    _declared(service, case, "dpo")


@DECLARED
@declared.parametrize()
def test_the_server_answers_an_auditor_what_its_schema_declares(case: schemathesis.Case, service: Service) -> None:
    _declared(service, case, "auditor")


@DECLARED
@declared.parametrize()
def test_the_server_answers_the_operator_what_its_schema_declares(case: schemathesis.Case, service: Service) -> None:
    _declared(service, case, "operator")


# -- requests the fuzzing once found answered 500, each pinned ---------------------------------------------------------------


def _client(service: Service, role: str) -> TestClient:
    return client(service.app, service.tokens[role])


@pytest.mark.parametrize(
    ("path", "status"),
    [("/v1/policy/validation", 200), ("/v1/libraries/svkpk/policy/diff", 422)],
    ids=["validation", "diff"],
)
def test_a_candidate_policy_holding_a_character_yaml_forbids_is_invalid_not_a_500(
    service: Service, path: str, status: int
) -> None:
    response = _client(service, "dpo").post(
        path, content=b"libraries:\x11\n", headers={"Content-Type": "application/yaml"}
    )
    assert response.status_code == status, response.text  # validation: 200 {"valid": false, problems}; diff: 422
    if status == 200:
        assert response.json()["valid"] is False


def _recording(**moments: str) -> dict[str, str]:
    return {"id": "cam-edge", "camera": "entrance", "start": "2026-11-20T10:00:00+01:00",
            "end": "2026-11-20T11:00:00+01:00", "location": "/var/cctv/svkpk/edge.mp4", **moments}  # fmt: skip


EDGES = {  # each a request the service answers 500 (an OverflowError) instead of 4xx
    "recording starts before year 1 in UTC": ("librarian", "POST", "/v1/libraries/svkpk/camera-recordings", {},
                                              _recording(start="0001-01-01T00:00:00+03:01")),
    "recording ends after 9999 in UTC": ("librarian", "POST", "/v1/libraries/svkpk/camera-recordings", {},
                                         _recording(end="9999-12-31T23:59:59-01:00")),
    "imported recording starts before year 1": ("librarian", "POST", "/v1/libraries/svkpk/records", {},
        json.dumps({"type": "camera_recording", "library": "svkpk", "legal_hold": None,
                    **_recording(start="0001-01-01T00:00:00+03:01")})),
    "explanation as of after 9999 in UTC": ("dpo", "GET", "/v1/libraries/svkpk/readers/{reader}/explanation",
                                            {"as_of": "9999-12-31T23:59:59-01:00"}, None),
    "diff as of after 9999 in UTC": ("dpo", "POST", "/v1/libraries/svkpk/policy/diff",
                                     {"as_of": "9999-12-31T23:59:59-01:00"}, "policy"),
    "request received on 9999-12-31": ("dpo", "POST", "/v1/libraries/svkpk/requests", {},
                                       {"reader": "{reader}", "kind": "erasure", "received_on": "9999-12-31"}),
}  # fmt: skip


@pytest.mark.parametrize("request_", list(EDGES.values()), ids=list(EDGES))
def test_a_day_or_moment_at_the_calendars_edge_gets_4xx_not_500(service: Service, request_: tuple[Any, ...]) -> None:
    role, method, path, query, body = request_
    reader = service.known["reader_id"][0]
    path = path.replace("{reader}", reader)
    if isinstance(body, dict):
        body = {key: value.replace("{reader}", reader) for key, value in body.items()}
    content = POLICY.read_text(encoding="utf-8") if body == "policy" else body
    sent = {"json": content} if isinstance(content, dict) else {"content": (content or "").encode()}
    response = _client(service, role).request(method, path, params=query, **sent)  # type: ignore[arg-type]
    assert 400 <= response.status_code < 500, response.text


NULS = {  # each answered 500 on PostgreSQL (psycopg DataError: text cannot hold NUL), 404 or 200 on SQLite
    "reader id in the path": ("dpo", "GET", "/v1/libraries/svkpk/readers/SV%00X", {}, None),
    "reader id in a request": ("dpo", "POST", "/v1/libraries/svkpk/requests", {}, {"reader": "SV\x00X", "kind": "erasure"}),
    "subject in the decision log query": ("dpo", "GET", "/v1/libraries/svkpk/decisions", {"subject": "a\x00b"}, None),
    "run id in the path": ("dpo", "GET", "/v1/libraries/svkpk/runs/a%00b", {}, None),
    "exception id in the path": ("director", "POST", "/v1/libraries/svkpk/exceptions/E%00X/revocation", {}, {}),
}  # fmt: skip


@pytest.mark.parametrize("request_", list(NULS.values()), ids=list(NULS))
def test_a_value_holding_a_nul_character_gets_4xx_not_500(service: Service, request_: tuple[Any, ...]) -> None:
    role, method, path, query, body = request_
    response = _client(service, role).request(method, path, params=query, json=body)
    assert response.status_code < 500, response.text


def test_decisions_after_a_position_past_32_bits_gets_no_5xx(service: Service) -> None:
    response = _client(service, "dpo").get(
        "/v1/libraries/svkpk/decisions", params={"after": 2**31}
    )  # past a 32-bit integer
    assert response.status_code == 200, response.text
    assert response.json() == {"entries": [], "next_after": None}


# -- what the schema now states, pinned: the days the issue found accepted or refused against the schema -------------

STATED = {  # each answered 200 before (read as 1970, or as a moment in no zone at all)
    "to=0 read as a day": ("dpo", "GET", "/v1/libraries/svkpk/decisions", {"to": "0"}, None, "write a day"),
    "as_of=0.5 read as a moment": ("dpo", "GET", "/v1/libraries/svkpk/readers/{reader}/explanation",
                                   {"as_of": "0.5"}, None, "write a day"),
    "as_of without offset": ("dpo", "GET", "/v1/libraries/svkpk/readers/{reader}/explanation",
                             {"as_of": "2026-11-22T02:00:00"}, None, "needs its UTC offset"),
    "a run's as_of without offset": ("scheduler", "POST", "/v1/libraries/svkpk/runs", {},
                                     {"as_of": "2026-11-22T02:00:00", "dry_run": True}, "needs its UTC offset"),
    "a recording's start without offset": ("librarian", "POST", "/v1/libraries/svkpk/camera-recordings", {},
                                           _recording(start="2026-11-20T10:00:00"), "needs its UTC offset"),
    "a year before 1000": ("dpo", "POST", "/v1/libraries/svkpk/requests", {},
                           {"reader": "{reader}", "kind": "erasure", "received_on": "0999-12-31"}, "between the years"),
    "a query parameter the endpoint does not take": ("dpo", "GET", "/v1/libraries/svkpk/decisions",
                                                     {"acton": "anonymise"}, None, "does not take"),
}  # fmt: skip


@pytest.mark.parametrize("request_", list(STATED.values()), ids=list(STATED))
def test_a_value_the_schema_refuses_is_refused_with_what_to_write(service: Service, request_: tuple[Any, ...]) -> None:
    role, method, path, query, body, said = request_
    reader = service.known["reader_id"][0]
    path = path.replace("{reader}", reader)
    if isinstance(body, dict):
        body = {
            key: value.replace("{reader}", reader) if isinstance(value, str) else value for key, value in body.items()
        }
    response = _client(service, role).request(method, path, params=query, json=body)
    assert response.status_code == 422, response.text
    assert said in response.json()["detail"]


def test_the_schema_states_the_years_and_the_offset_it_takes() -> None:
    components = SCHEMA_APP.openapi()["components"]["schemas"]
    until = components["HoldIn"]["properties"]["until"]["anyOf"][0]
    assert until == {"type": "string", "format": "date", "pattern": "^[1-8][0-9]{3}-"}
    moment = components["CameraRecordingIn"]["properties"]["start"]
    assert moment["format"] == "date-time"  # RFC 3339: a date-time has its offset
    assert components["LibraryIn"]["properties"]["id"]["enum"] == ["kntb", "svkpk", "zdirec"]
