"""Who may call what over HTTP: every /v1 endpoint against every role, and what another library's token learns.

The table `ENDPOINTS` names every endpoint of the app under /v1 with the operation it is checked against in
api.auth.PERMISSIONS, and how to call it with valid values. A new endpoint without a row fails
`test_the_table_names_every_v1_endpoint_of_the_app`. Against one store, built once (svkpk with some sample
records, run once: decisions, a proposal, checkpoints; kntb stocked the same way beside it), the tests establish:

- a role PERMISSIONS allows is let in (the endpoint's own answer, never 401/403), a role it does not allow gets
  403 with a Problem body;
- no token, a token that is not a bearer token, an unknown one or a revoked one gets 401 with
  `WWW-Authenticate: Bearer`;
- a token of another library gets the same 403, byte for byte, whether the path names a library (or a subject)
  that exists or one that does not; and a subject of another library named in one's own library's path is
  answered as one that does not exist: no existence leak;
- an operator naming a library the policy does not have gets 404, not 500.
"""

from __future__ import annotations

import itertools
import json
import secrets
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, routing
from fastapi.testclient import TestClient

from kodex.api.auth import PERMISSIONS
from kodex.api.throttle import FailedTokens
from kodex.api.web import create_app
from kodex.audit.log import LogFilter, query
from kodex.retention.run import run_library
from kodex.rules.ruleset import Ruleset
from kodex.services.holds import set_hold
from kodex.services.importing import import_records
from kodex.services.instructions import list_instructions
from kodex.services.proposals import list_proposals
from kodex.services.rule_exceptions import grant_exception
from kodex.services.setup import Workspace
from kodex.services.users import ROLES, add_user, revoke_user
from tests.support import POLICY, ROOT, fresh_installation

HOME, OTHER = "svkpk", "kntb"  # the library the tokens act for, and another one's
NOWHERE = "nosuchlibrary"  # a library neither the policy nor the store has
AS_OF = date(2026, 11, 22)
WAIT = 60.0  # PostgreSQL's run lock is shared by every schema on the server (tests/retention/support.py)
SAMPLE = ROOT / "samples" / "readers.jsonl"
READER = "SV-0000077"  # an active adult: she stays after the run; two expulsions make her a proposal
RULE = "svkpk.retention.after_settlement"  # the director may grant exceptions to it
STOCK = {
    HOME: {"SV-0000002", "SV-0000005", "SV-0000035", "SV-0000077", "SV-0000095", "SV-0000107", "SV-0000137",
           "E-SV-0000107", "entrance-20261114T00", "entrance-20261114T01"},
    OTHER: {"KN-0000007", "E-KN-0000007", "KN-0000082", "I-KN-0000082-1", "I-KN-0000082-2"},  # a loss and a damage
}  # fmt: skip
EXPULSIONS = [
    {"type": "incident", "library": HOME, "id": f"I-{READER}-{n}", "reader": READER, "kind": "expelled_from_premises",
     "at": at}
    for n, at in ((1, "2026-01-15"), (2, "2026-10-02"))
]  # fmt: skip
POLICY_TEXT = POLICY.read_text(encoding="utf-8")
NOT_A_POLICY = "kodex: 1\n"  # parses as YAML, fails as a policy: validation answers 200 with its problems


def sample_lines(library: str) -> list[str]:
    """Some of the library's sample records (svkpk's reader with two expulsions too), as JSON Lines."""
    lines = SAMPLE.read_text(encoding="utf-8").splitlines(keepends=True)
    chosen = [line for line in lines if json.loads(line)["id"] in STOCK[library]]
    return chosen + [json.dumps(incident) + "\n" for incident in EXPULSIONS if incident["library"] == library]


# -- the store: built once for the module ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Holdings:
    """What a stocked library holds besides its records."""

    reader: str  # an active reader, with an open proposal
    run: str  # a finished nightly run
    dry_run: str  # a finished dry run (its plan has decisions)
    entry: str  # a decision log entry, covered by a signed checkpoint
    proposal: str  # an open proposal about `reader`
    exception: str  # an exception the records carry
    user: str  # a user's id (a librarian's)
    instruction: str  # an instruction to the library system the run wrote


def stock(work: Workspace, ruleset: Ruleset, library: str) -> Holdings:
    """Import some of the library's sample records and run it: decisions, a proposal, checkpoints."""
    lines = sample_lines(library)
    recordings = work.settings.recordings
    import_records(
        lambda: iter(lines), work.engine, ruleset, work.master, AS_OF, only_library=library, recordings=recordings
    )
    plan = run_library(work.engine, ruleset, work.master, library, AS_OF, dry_run=True)
    nightly = run_library(
        work.engine, ruleset, work.master, library, AS_OF, wait=WAIT, recordings_folder=recordings.folder(library)
    )
    entry = query(work.engine, LogFilter(library, kind="decision"), limit=1)[0][1]["id"]
    proposals = list_proposals(work.engine, library)
    assert len(proposals) == 1, "the stock should make one proposal"
    (exception,) = (line for line in lines if json.loads(line)["type"] == "exception")
    user, _ = add_user(work.engine, work.master, library, "librarian", f"Librarian of {library}")
    instruction = list_instructions(work.engine, ruleset, work.master, library, limit=1)[0]
    return Holdings(
        reader=str(proposals[0].subject), run=nightly.run_id, dry_run=plan.run_id, entry=entry,
        proposal=proposals[0].id, exception=json.loads(exception)["id"], user=user.id, instruction=instruction.id,
    )  # fmt: skip


@dataclass
class Site:
    work: Workspace
    ruleset: Ruleset
    client: TestClient
    tokens: dict[tuple[str | None, str], str]  # (library, role) -> token; operators have library None
    revoked: str  # a token revoked after it was issued
    home: Holdings  # svkpk's
    other: Holdings  # kntb's
    counter: Iterator[int] = field(default_factory=itertools.count)

    def token(self, role: str, library: str = HOME) -> str:
        return self.tokens[(None if role == "operator" else library, role)]

    def fresh_user(self) -> str:
        user, _ = add_user(self.work.engine, self.work.master, HOME, "librarian", f"Revocable {next(self.counter)}")
        return user.id

    def fresh_hold(self) -> str:
        set_hold(self.work.engine, self.work.master, HOME, "reader", READER, "a court asked for the records", None)
        return READER

    def fresh_exception(self) -> str:
        granted = grant_exception(
            self.work.engine, self.ruleset, self.work.master, HOME,
            {"id": f"X-ACCESS-{next(self.counter)}", "subject": READER, "rule": RULE, "reason": "pending dispute",
             "until": date(2027, 4, 21)},
            {"type": "user", "id": "director-of-the-test", "role": "director", "name": "ředitel"}, AS_OF,
        )  # fmt: skip
        return str(granted["id"])

    def elsewhere(self) -> dict[str, str]:
        """Every path value besides {library}, naming something kntb holds (svkpk does not)."""
        kntb = self.other
        return {
            "user_id": kntb.user, "reader_id": kntb.reader, "kind": "readers", "subject": kntb.reader,
            "exception_id": kntb.exception, "proposal_id": kntb.proposal, "run_id": kntb.dry_run,
            "entry_id": kntb.entry, "instruction_id": kntb.instruction,
        }  # fmt: skip


def user_tokens(work: Workspace) -> dict[tuple[str | None, str], str]:
    tokens: dict[tuple[str | None, str], str] = {}
    for role in ROLES:
        for library in (None,) if role == "operator" else (HOME, OTHER):
            tokens[(library, role)] = add_user(work.engine, work.master, library, role, f"{role} of {library}")[1]
    return tokens


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, ruleset: Ruleset) -> Iterator[Site]:
    where = tmp_path_factory.mktemp("http_access")
    # zdirec, in the policy too, is not onboarded here
    with fresh_installation(where, ruleset, agreements=[HOME, OTHER]) as (work, _):
        home, other = stock(work, ruleset, HOME), stock(work, ruleset, OTHER)
        assert home.reader == READER, "svkpk's proposal should be about the reader expelled twice"
        set_hold(work.engine, work.master, OTHER, "reader", other.reader, "a court asked for the records", None)
        tokens = user_tokens(work)
        gone, revoked = add_user(work.engine, work.master, HOME, "dpo", "Revoked Dpo")
        revoke_user(work.engine, HOME, gone.id)
        # every endpoint is called with unknown and revoked tokens from the one test client: without room for them
        # all, the failed-token throttle (tests/api/test_http_door.py) would answer 429 instead of 401
        room = FailedTokens(burst=100_000)
        with TestClient(create_app(work, ruleset, failed_tokens=room)) as client:
            yield Site(work, ruleset, client, tokens, revoked, home, other)


# -- every /v1 endpoint -----------------------------------------------------------------------------------------------

Body = dict[str, Any] | str  # a dict is sent as JSON, a str as it is (with the endpoint's content type)


def no_values(site: Site) -> dict[str, str]:
    return {}


def reader_values(site: Site) -> dict[str, str]:
    return {"reader_id": READER}


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # as the app declares it
    operation: str  # its row in api.auth.PERMISSIONS
    values: Callable[[Site], dict[str, str]] = no_values  # the path's values besides {library}
    query: Mapping[str, str] = field(default_factory=dict)
    body: Body | None = None
    content_type: str | None = None  # for a str body
    ok: frozenset[int] = frozenset({200})  # what a role it allows gets (a valid call)

    @property
    def name(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def names(self) -> list[str]:
        """The path's names besides {library}."""
        return [part.split("}")[0] for part in self.path.split("{")[1:] if not part.startswith("library}")]

    @property
    def per_library(self) -> bool:
        return "{library}" in self.path

    def url(self, values: Mapping[str, str], library: str = HOME) -> str:
        return self.path.format(library=library, **values) if self.per_library else self.path.format(**values)

    def call(
        self, client: TestClient, token: str | None, values: Mapping[str, str], library: str = HOME, **headers: str
    ) -> httpx.Response:
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        content: str | None = None
        payload: dict[str, Any] | None = None
        if isinstance(self.body, str):
            content, headers["Content-Type"] = self.body, self.content_type or "text/plain"
        else:
            payload = self.body
        response: httpx.Response = client.request(
            self.method, self.url(values, library), params=dict(self.query), json=payload, content=content,
            headers=headers,
        )  # fmt: skip
        return response


def _line(record_id: str) -> str:
    return next(line for line in sample_lines(HOME) if json.loads(line)["id"] == record_id)


ENDPOINTS: list[Endpoint] = [
    # libraries and users
    Endpoint("POST", "/v1/libraries", "libraries.create", body={"id": HOME, "admin_name": "Druhá Správkyně"},
             ok=frozenset({201})),
    Endpoint("GET", "/v1/libraries", "libraries.list"),
    Endpoint("GET", "/v1/libraries/{library}", "libraries.read"),
    Endpoint("PUT", "/v1/libraries/{library}/agreement", "libraries.agreement",
             body={"signed_on": "2026-01-05", "reference": "DPA-T-1"}),
    Endpoint("GET", "/v1/libraries/{library}/agreements", "libraries.agreements"),
    Endpoint("POST", "/v1/libraries/{library}/users", "users.create", body={"role": "librarian", "name": "Nová"},
             ok=frozenset({201})),
    Endpoint("GET", "/v1/libraries/{library}/users", "users.list"),
    Endpoint("DELETE", "/v1/libraries/{library}/users/{user_id}", "users.revoke",
             values=lambda site: {"user_id": site.fresh_user()}, ok=frozenset({204})),
    # records
    Endpoint("POST", "/v1/libraries/{library}/records", "records.import", body=_line(READER),
             content_type="application/x-ndjson"),
    Endpoint("POST", "/v1/libraries/{library}/camera-recordings", "camera.register",
             body={"id": "entrance-20261122T04", "camera": "entrance", "start": "2026-11-22T04:00:00+01:00",
                   "end": "2026-11-22T05:00:00+01:00", "location": "/var/cctv/svkpk/entrance/20261122T04.mp4"},
             ok=frozenset({201})),
    Endpoint("GET", "/v1/libraries/{library}/readers/{reader_id}", "readers.read", values=reader_values),
    Endpoint("GET", "/v1/libraries/{library}/readers/{reader_id}/explanation", "readers.explain",
             values=reader_values, query={"as_of": AS_OF.isoformat()}),
    Endpoint("GET", "/v1/libraries/{library}/readers/{reader_id}/access-copy", "readers.access_copy",
             values=reader_values),
    # requests, holds, exceptions, proposals
    Endpoint("POST", "/v1/libraries/{library}/requests", "requests.create",
             body={"reader": READER, "kind": "loan_history_erasure"}, ok=frozenset({201})),
    Endpoint("GET", "/v1/libraries/{library}/requests", "requests.list"),
    Endpoint("PUT", "/v1/libraries/{library}/{kind}/{subject}/legal-hold", "holds.set",
             values=lambda site: {"kind": "readers", "subject": READER}, body={"reason": "a court asked"}),
    Endpoint("DELETE", "/v1/libraries/{library}/{kind}/{subject}/legal-hold", "holds.release",
             values=lambda site: {"kind": "readers", "subject": site.fresh_hold()}, ok=frozenset({204})),
    Endpoint("GET", "/v1/libraries/{library}/exceptions", "exceptions.list"),
    Endpoint("POST", "/v1/libraries/{library}/exceptions", "exceptions.grant",
             body={"subject": READER, "rule": RULE, "reason": "pending dispute", "until": "2027-04-21"},
             ok=frozenset({201})),
    Endpoint("POST", "/v1/libraries/{library}/exceptions/{exception_id}/revocation", "exceptions.revoke",
             values=lambda site: {"exception_id": site.fresh_exception()}, body={}),
    Endpoint("GET", "/v1/libraries/{library}/proposals", "proposals.list"),
    Endpoint("POST", "/v1/libraries/{library}/proposals/{proposal_id}/decision", "proposals.decide",
             values=lambda site: {"proposal_id": site.home.proposal}, body={"accept": False, "reason": "a first time"},
             ok=frozenset({200, 422})),  # 422 when asked again: it is decided already
    # runs
    Endpoint("POST", "/v1/libraries/{library}/runs", "runs.start", body={"dry_run": True, "as_of": "2026-11-22"},
             ok=frozenset({202})),
    Endpoint("GET", "/v1/libraries/{library}/runs", "runs.read"),
    Endpoint("GET", "/v1/libraries/{library}/runs/{run_id}", "runs.read", values=lambda site: {"run_id": site.home.run}),
    Endpoint("GET", "/v1/libraries/{library}/runs/{run_id}/plan", "runs.plan",
             values=lambda site: {"run_id": site.home.dry_run}),
    # the decision log
    Endpoint("GET", "/v1/libraries/{library}/decisions", "decisions.read", query={"kind": "decision"}),
    Endpoint("GET", "/v1/libraries/{library}/decisions/export", "decisions.read"),
    Endpoint("GET", "/v1/libraries/{library}/audit/verification", "audit.verify"),
    Endpoint("POST", "/v1/libraries/{library}/audit/verification", "audit.verify", body="not a note\n",
             content_type="text/plain"),
    Endpoint("GET", "/v1/libraries/{library}/audit/checkpoint", "audit.verify"),
    Endpoint("GET", "/v1/libraries/{library}/audit/proofs/{entry_id}", "audit.verify",
             values=lambda site: {"entry_id": site.home.entry}),
    Endpoint("GET", "/v1/libraries/{library}/audit/checkpoints", "audit.verify"),
    Endpoint("POST", "/v1/libraries/{library}/audit/checkpoints", "audit.sign", ok=frozenset({201})),
    Endpoint("GET", "/v1/audit/public-keys", "audit.keys"),
    # the instruction feed
    Endpoint("GET", "/v1/libraries/{library}/instructions", "instructions.read"),
    Endpoint("GET", "/v1/libraries/{library}/instructions/{instruction_id}", "instructions.read",
             values=lambda site: {"instruction_id": site.home.instruction}),
    Endpoint("POST", "/v1/libraries/{library}/instructions/{instruction_id}/outcome", "instructions.outcome",
             values=lambda site: {"instruction_id": site.home.instruction}, body={"outcome": "failed"}),
    # the instruction feed: where it is pushed
    Endpoint("PUT", "/v1/libraries/{library}/webhook", "webhooks.set",
             body={"url": "https://ils.example.org/kodex/instructions"}),
    # the policy
    Endpoint("GET", "/v1/policy", "policy.read"),
    Endpoint("POST", "/v1/policy/validation", "policy.validate", body=NOT_A_POLICY, content_type="application/yaml"),
    Endpoint("POST", "/v1/libraries/{library}/policy/diff", "policy.diff", query={"as_of": AS_OF.isoformat()},
             body=POLICY_TEXT, content_type="application/yaml"),
]  # fmt: skip

PER_LIBRARY = [e for e in ENDPOINTS if e.per_library]
# The path values besides {library} that name nothing in any library: the other half of the existence-leak test.
MISSING = {"user_id": "00000000-0000-0000-0000-000000000000", "reader_id": "SV-9999999", "subject": "SV-9999999",
           "kind": "readers", "exception_id": "X-NOSUCH", "proposal_id": "00000000-0000-0000-0000-000000000000",
           "run_id": "00000000-0000-0000-0000-000000000000", "entry_id": "00000000-0000-0000-0000-000000000000",
           "instruction_id": "00000000-0000-0000-0000-000000000000"}  # fmt: skip
WITH_SUBJECT = [e for e in PER_LIBRARY if e.names]


def by_endpoint(endpoints: list[Endpoint]) -> list[Any]:
    return [pytest.param(e, id=e.name) for e in endpoints]


def by_endpoint_and_role(allowed: bool) -> list[Any]:
    return [
        pytest.param(e, role, id=f"{e.name} as {role}")
        for e in ENDPOINTS
        for role in ROLES
        if (role in PERMISSIONS[e.operation]) == allowed
    ]


def is_problem(response: httpx.Response) -> bool:
    body = response.json()
    return (
        set(body) == {"title", "detail", "errors"}
        and isinstance(body["title"], str)
        and isinstance(body["detail"], str)
        and bool(body["detail"])
        and isinstance(body["errors"], list)
    )


# -- the table is the app's ------------------------------------------------------------------------------------------


def v1_routes(app: FastAPI) -> dict[tuple[str, str], Any]:
    """Every route of the app under /v1/, its included routers' too, by (method, path)."""
    flatten = getattr(routing, "iter_route_contexts", None)  # FastAPI >= 0.13x includes routers lazily
    routes: list[Any] = list(flatten(app.routes)) if flatten is not None else list(app.routes)
    return {
        (method, route.path): getattr(route, "original_route", route)
        for route in routes
        if isinstance(route.path, str) and route.path.startswith("/v1/")
        for method in route.methods or ()
    }


def checked_operations(route: Any) -> list[str]:
    """The operations a route's dependencies check (the `operation` api.auth.for_library/for_service closes over)."""
    found: list[str] = []

    def walk(dependant: Any) -> None:
        for dependency in dependant.dependencies:
            names = getattr(getattr(dependency.call, "__code__", None), "co_freevars", ())
            if "operation" in names:
                found.append(dependency.call.__closure__[names.index("operation")].cell_contents)
            walk(dependency)

    walk(route.dependant)
    return found


def test_the_table_names_every_v1_endpoint_of_the_app(site: Site) -> None:
    app = site.client.app
    assert isinstance(app, FastAPI)
    tabled = [(e.method, e.path) for e in ENDPOINTS]
    assert len(tabled) == len(set(tabled)), "an endpoint has two rows"
    assert set(tabled) == set(v1_routes(app))
    documented = {
        (m.upper(), path) for path, item in app.openapi()["paths"].items() for m in item if path.startswith("/v1/")
    }
    assert set(tabled) == documented


def test_each_endpoint_checks_the_operation_its_row_names(site: Site) -> None:
    assert isinstance(site.client.app, FastAPI)
    routes = v1_routes(site.client.app)
    checked = {e.name: checked_operations(routes[(e.method, e.path)]) for e in ENDPOINTS}
    assert checked == {e.name: [e.operation] for e in ENDPOINTS}


def test_every_operation_in_the_table_is_in_the_permissions_table() -> None:
    assert {e.operation for e in ENDPOINTS} <= set(PERMISSIONS)


def test_every_operation_in_the_permissions_table_has_an_endpoint() -> None:
    assert set(PERMISSIONS) == {e.operation for e in ENDPOINTS}


# -- every endpoint x every role -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("endpoint", "role"), by_endpoint_and_role(allowed=True))
def test_every_endpoint_lets_in_each_role_it_allows(site: Site, endpoint: Endpoint, role: str) -> None:
    response = endpoint.call(site.client, site.token(role), endpoint.values(site))
    assert response.status_code not in (401, 403), response.text
    assert response.status_code in endpoint.ok, response.text


@pytest.mark.parametrize(("endpoint", "role"), by_endpoint_and_role(allowed=False))
def test_every_endpoint_answers_a_role_it_does_not_allow_with_403(site: Site, endpoint: Endpoint, role: str) -> None:
    response = endpoint.call(site.client, site.token(role), endpoint.values(site))
    assert response.status_code == 403, response.text
    assert is_problem(response), response.text
    assert response.json()["title"] == "forbidden"


def test_a_dpo_may_start_dry_runs_only(site: Site) -> None:
    start = next(e for e in ENDPOINTS if e.operation == "runs.start")
    response = site.client.post(
        start.url({}),
        json={"dry_run": False, "as_of": "2026-11-22"},
        headers={"Authorization": f"Bearer {site.token('dpo')}"},
    )
    assert response.status_code == 403, response.text
    assert is_problem(response)
    assert "dry runs only" in response.json()["detail"]


# -- no token, an unknown one, a revoked one ----------------------------------------------------------------------


def assert_unauthenticated(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert is_problem(response), response.text


@pytest.mark.parametrize("endpoint", by_endpoint(ENDPOINTS))
def test_every_endpoint_answers_a_request_without_a_token_with_401(site: Site, endpoint: Endpoint) -> None:
    assert_unauthenticated(endpoint.call(site.client, None, endpoint.values(site)))


@pytest.mark.parametrize("endpoint", by_endpoint(ENDPOINTS))
def test_every_endpoint_answers_a_token_that_is_not_bearer_with_401(site: Site, endpoint: Endpoint) -> None:
    basic = {"Authorization": f"Basic {site.token('operator')}"}
    assert_unauthenticated(endpoint.call(site.client, None, endpoint.values(site), **basic))


@pytest.mark.parametrize("endpoint", by_endpoint(ENDPOINTS))
def test_every_endpoint_answers_an_unknown_token_with_401(site: Site, endpoint: Endpoint) -> None:
    unknown = "kodex_" + secrets.token_urlsafe(32)
    assert_unauthenticated(endpoint.call(site.client, unknown, endpoint.values(site)))


@pytest.mark.parametrize("endpoint", by_endpoint(ENDPOINTS))
def test_every_endpoint_answers_a_revoked_token_with_401(site: Site, endpoint: Endpoint) -> None:
    assert_unauthenticated(endpoint.call(site.client, site.revoked, endpoint.values(site)))


# -- another library's token learns nothing -----------------------------------------------------------------------


def library_role(endpoint: Endpoint) -> str:
    """A library's role the endpoint allows (operators act everywhere); for operator-only ones, a role it does not."""
    allowed = sorted(PERMISSIONS[endpoint.operation] - {"operator"})
    return allowed[0] if allowed else "library_admin"


def answer(response: httpx.Response) -> tuple[int, bytes]:
    return response.status_code, response.content


@pytest.mark.parametrize("endpoint", by_endpoint(PER_LIBRARY))
def test_another_librarys_token_is_denied_alike_for_an_existing_and_a_missing_library(
    site: Site, endpoint: Endpoint
) -> None:
    token = site.token(library_role(endpoint), OTHER)
    values = endpoint.values(site)
    existing = endpoint.call(site.client, token, values, library=HOME)
    missing = endpoint.call(site.client, token, values, library=NOWHERE)
    assert existing.status_code == 403, existing.text
    assert is_problem(existing)
    assert answer(existing) == answer(missing)


@pytest.mark.parametrize("endpoint", by_endpoint(WITH_SUBJECT))
def test_another_librarys_token_is_denied_alike_for_an_existing_and_a_missing_subject(
    site: Site, endpoint: Endpoint
) -> None:
    token = site.token(library_role(endpoint), OTHER)
    values = endpoint.values(site)
    existing = endpoint.call(site.client, token, values)
    missing = endpoint.call(site.client, token, {name: MISSING[name] for name in endpoint.names})
    assert existing.status_code == 403, existing.text
    assert is_problem(existing)
    assert answer(existing) == answer(missing)


def by_endpoint_named_elsewhere() -> list[Any]:
    return [pytest.param(e, id=e.name) for e in WITH_SUBJECT]


def unechoed(response: httpx.Response, values: Mapping[str, str]) -> tuple[int, str]:
    """Status and body, each path value in the body replaced by its name (some answers name the id asked for)."""
    text = response.text
    for name, value in values.items():
        if name != "kind":
            text = text.replace(value, f"<{name}>")
    return response.status_code, text


@pytest.mark.parametrize("endpoint", by_endpoint_named_elsewhere())
def test_another_librarys_subject_named_in_ones_own_library_is_answered_as_a_missing_one(
    site: Site, endpoint: Endpoint
) -> None:
    token = site.token(library_role(endpoint))
    elsewhere = {name: site.elsewhere()[name] for name in endpoint.names}
    missing = {name: MISSING[name] for name in endpoint.names}
    found = endpoint.call(site.client, token, elsewhere)
    not_found = endpoint.call(site.client, token, missing)
    assert found.status_code == 404, found.text
    assert is_problem(found)
    assert unechoed(found, elsewhere) == unechoed(not_found, missing)


def test_the_subject_tables_name_every_path_value() -> None:
    assert {name for e in ENDPOINTS for name in e.names} == set(MISSING)


# -- an operator and a library the policy does not have ------------------------------------------------------------


OPERATORS_ACT = [e for e in PER_LIBRARY if "operator" in PERMISSIONS[e.operation]]
OPERATORS_DO_NOT_ACT = [e for e in PER_LIBRARY if "operator" not in PERMISSIONS[e.operation]]


@pytest.mark.parametrize("endpoint", by_endpoint(OPERATORS_ACT))
def test_an_operator_naming_a_library_the_policy_does_not_have_gets_404(site: Site, endpoint: Endpoint) -> None:
    values = {name: MISSING[name] for name in endpoint.names}
    response = endpoint.call(site.client, site.token("operator"), values, library=NOWHERE)
    assert response.status_code == 404, response.text
    assert is_problem(response), response.text
    assert response.json()["detail"] == f"no library {NOWHERE!r} in this installation"


@pytest.mark.parametrize("endpoint", by_endpoint(OPERATORS_DO_NOT_ACT))
def test_an_operator_naming_a_library_the_policy_does_not_have_where_operators_may_not_act_gets_403(
    site: Site, endpoint: Endpoint
) -> None:
    values = {name: MISSING[name] for name in endpoint.names}
    response = endpoint.call(site.client, site.token("operator"), values, library=NOWHERE)
    assert response.status_code == 403, response.text
    assert is_problem(response), response.text
