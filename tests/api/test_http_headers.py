"""What every answer's headers say (api/headers.py), and /docs and /redoc served offline (api/docs.py) (issue 16).

Every answer — a /v1 answer with personal data, an error, /health, a 413 from the body limit, a 404 — carries
`Cache-Control: no-store`, `X-Content-Type-Options: nosniff`, `X-Frame-Options: DENY` and a Content-Security-Policy
with `frame-ancestors 'none'`, and no `server` banner (the app's, and uvicorn's: `kodex serve` is run in
tests/api/test_serve_workers.py and test_http_bad_input.py). The documentation pages reference only same-origin
URLs, every one answers 200 with the right content type, and their policy lets exactly those scripts run.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
from fastapi.testclient import TestClient

from kodex.api.headers import API_POLICY, DOCS_POLICY
from kodex.api.serving import UVICORN
from kodex.api.web import create_app
from kodex.rules.ruleset import Ruleset
from kodex.services.users import add_user
from tests.support import client, fresh_installation


def limit_requests_to_one_mib(config: Path) -> None:
    config.write_text("max_request_mb = 1\n" + config.read_text(encoding="utf-8"), encoding="utf-8")


READER = {"type": "reader", "library": "svkpk", "id": "SV-HDR-1", "kind": "person", "birth_date": "1990-05-05",
          "renewed_at": "2026-06-01", "debt": 0, "active_loans": 0, "personal": {"last_name": "Hlavičková"}}  # fmt: skip


@pytest.fixture(scope="module")
def dpo(tmp_path_factory: pytest.TempPathFactory, ruleset: Ruleset) -> Iterator[TestClient]:
    """A dpo's client over svkpk with one reader imported; bodies limited to 1 MiB."""
    home = tmp_path_factory.mktemp("headers")
    with fresh_installation(home, ruleset, agreements=["svkpk"], configure=limit_requests_to_one_mib) as (work, _):
        librarian = add_user(work.engine, work.master, "svkpk", "librarian", "Koha")[1]
        token = add_user(work.engine, work.master, "svkpk", "dpo", "Officer D")[1]
        dpo = client(create_app(work, ruleset))
        imported = dpo.post(
            "/v1/libraries/svkpk/records",
            content=json.dumps(READER).encode(),
            headers={"Authorization": f"Bearer {librarian}"},
        )
        assert imported.status_code == 200, imported.text
        dpo.headers["Authorization"] = f"Bearer {token}"
        yield dpo


ANSWERS = {
    "an Art. 15 copy": ("GET", "/v1/libraries/svkpk/readers/SV-HDR-1/access-copy", None, 200),
    "a reader": ("GET", "/v1/libraries/svkpk/readers/SV-HDR-1", None, 200),
    "an export": ("GET", "/v1/libraries/svkpk/decisions/export", None, 200),
    "health": ("GET", "/health", None, 200),
    "the schema": ("GET", "/openapi.json", None, 200),
    "a refused body": ("POST", "/v1/libraries/svkpk/requests", b'{"reader": 1}', 422),
    "a body over the limit": ("POST", "/v1/libraries/svkpk/records", b"\n" * (1024 * 1024 + 1), 413),
    "no such route": ("GET", "/v1/nothing-here", None, 404),
    "an undeclared method": ("TRACE", "/v1/libraries/svkpk/readers/SV-HDR-1", None, 405),
}


@pytest.mark.parametrize(("method", "path", "body", "status"), list(ANSWERS.values()), ids=list(ANSWERS))
def test_every_answer_is_not_stored_not_sniffed_not_framed_and_names_no_server(
    dpo: TestClient, method: str, path: str, body: bytes | None, status: int
) -> None:
    response = dpo.request(method, path, content=body, headers={"Content-Type": "application/json"} if body else {})
    assert response.status_code == status, response.text
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["content-security-policy"] == API_POLICY
    assert "frame-ancestors 'none'" in API_POLICY and "default-src 'none'" in API_POLICY
    assert "server" not in response.headers


def test_an_answer_without_a_token_carries_them_too(dpo: TestClient) -> None:
    response = TestClient(dpo.app).get("/v1/libraries/svkpk/readers/SV-HDR-1")
    assert response.status_code == 401
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["content-security-policy"] == API_POLICY


@pytest.mark.parametrize(
    ("path", "allowed"),
    [("/v1/libraries/svkpk/readers/SV-HDR-1", "GET"), ("/v1/libraries/svkpk/users", "GET, POST"),
     ("/v1/libraries/svkpk/readers/SV-HDR-1/legal-hold", "DELETE, PUT")],
    ids=["one method", "two routes, one path", "a hold"],
)  # fmt: skip
def test_a_405_names_every_method_the_path_allows(dpo: TestClient, path: str, allowed: str) -> None:
    response = dpo.request("TRACE", path)
    assert response.status_code == 405
    assert response.headers["allow"] == allowed  # RFC 9110, 15.5.6


def test_uvicorn_is_told_not_to_send_its_server_header() -> None:
    assert UVICORN["server_header"] is False


# -- /docs and /redoc -----------------------------------------------------------------------------------------------


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self.inline_scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        self.found += [value for key, value in named.items() if key in {"src", "href", "spec-url"} and value]
        if tag == "script" and "src" not in named:
            self.inline_scripts += 1


EXPECTED_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png", ".json": "application/json"}


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_documentation_page_references_only_what_kodex_serves_itself(dpo: TestClient, page: str) -> None:
    anonymous = TestClient(dpo.app)
    response = anonymous.get(page)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["content-security-policy"] == DOCS_POLICY
    links = _Links()
    links.feed(response.text)
    assert links.inline_scripts == 0  # DOCS_POLICY runs no inline script
    assert links.found
    urls = [urljoin(f"http://testserver{page}", link) for link in links.found]
    if page == "/docs":  # Swagger UI is started by a script of kodex's, which names the schema relative to itself
        init = next(url for url in urls if url.endswith("/docs/swagger-init.js"))
        text = anonymous.get(init).text
        assert '"../openapi.json"' in text and "validatorUrl: null" in text and "http" not in text
        urls.append(urljoin(init, "../openapi.json"))
    for url in urls:
        assert urlsplit(url).netloc == "testserver", url  # same origin: nothing from a CDN
        fetched = anonymous.get(url)
        assert fetched.status_code == 200, url
        suffix = "." + url.rsplit(".", 1)[-1]
        assert fetched.headers["content-type"].split(";")[0] == EXPECTED_TYPES[suffix], url


def test_the_documentation_policy_allows_scripts_from_kodex_only() -> None:
    directives = dict(part.strip().split(" ", 1) for part in DOCS_POLICY.split(";"))
    assert directives["script-src"] == "'self'"
    assert directives["default-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["connect-src"] == "'self'"
