"""Deep or huge bodies are refused before they are parsed, and CPU-heavy requests do not starve the rest (issue 16).

A policy (POST /v1/policy/validation, POST …/policy/diff, `kodex policy check`, any policy file kodex loads) over
rules.nesting.MAX_POLICY_BYTES gets 413 (exit 3), one nested deeper than MAX_POLICY_DEPTH or with more aliases than
MAX_POLICY_ALIASES 422 (exit 3); an imported line nested deeper than MAX_RECORD_DEPTH is `line N: nested too deeply`
(422, exit 4). "Before parsing" is asserted, not timed: the YAML parser is replaced by one that fails the test.

Heavy requests (policy validation and diff, imports, exports, verification) hold one of the process's
`heavy_requests` slots while they run. A stand-in for the work that blocks until released shows it: with more heavy
requests in flight than slots, exactly `heavy_requests` are inside the work, the rest wait their turn, and a cheap
request (health, a token check, a reader) answers meanwhile.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from kodex.api.cli import app as cli
from kodex.api.heavy import HeavySlots
from kodex.api.routes import policy_routes
from kodex.api.web import create_app
from kodex.config import load_settings
from kodex.rules import loading
from kodex.rules.nesting import MAX_POLICY_ALIASES, MAX_POLICY_BYTES, MAX_POLICY_DEPTH, MAX_RECORD_DEPTH, json_too_deep
from kodex.rules.ruleset import Ruleset
from kodex.services.setup import Workspace
from kodex.services.users import add_user
from tests.support import POLICY, Installation, fresh_installation

DEEP_FLOW = "a: " + "[" * 5000 + "]" * 5000 + "\n"  # the attack: 5,000 levels in 10 KB
DEEP_BLOCK = "a:\n" + "".join(" " * level + "- \n" for level in range(200)) + " " * 200 + "- x\n"
LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]\n"
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True)
)  # nine levels of nine aliases: 387 million strings once expanded
HUGE = "# a comment\n" * (MAX_POLICY_BYTES // 12 + 1)
YAML_TYPE = {"Content-Type": "application/yaml"}
POLICY_PATHS = {"validation": "/v1/policy/validation", "diff": "/v1/libraries/svkpk/policy/diff"}


@pytest.fixture(scope="module")
def installation(tmp_path_factory: pytest.TempPathFactory, ruleset: Ruleset) -> Iterator[Installation]:
    with fresh_installation(tmp_path_factory.mktemp("limits"), ruleset, agreements=["svkpk"]) as (work, _):
        tokens = {
            role: add_user(work.engine, work.master, "svkpk", role, f"{role} L")[1] for role in ("dpo", "librarian")
        }
        yield Installation(work, create_app(work, ruleset), tokens)


@pytest.fixture
def no_yaml_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The YAML parser fails the test if it is reached: what is refused must be refused before parsing."""

    def parsed(text: str, file: str) -> Any:
        raise AssertionError("the policy was parsed")

    monkeypatch.setattr(loading, "_parse_yaml", parsed)


def yaml_post(client: TestClient, path: str, text: str) -> httpx.Response:
    return client.post(path, content=text.encode("utf-8"), headers={"Content-Type": "application/yaml"})


# -- policies: size, nesting, aliases -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", list(POLICY_PATHS.values()), ids=list(POLICY_PATHS))
@pytest.mark.parametrize("text", [DEEP_FLOW, DEEP_BLOCK], ids=["flow", "block"])
@pytest.mark.usefixtures("no_yaml_parsing")
def test_a_policy_nested_deeper_than_the_limit_is_refused_422_before_it_is_parsed(
    installation: Installation, path: str, text: str
) -> None:
    response = yaml_post(installation.client("dpo"), path, text)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["title"] == "policy nested too deeply"
    assert body["detail"].endswith(f"nested too deeply (more than {MAX_POLICY_DEPTH} levels)")


@pytest.mark.parametrize("path", list(POLICY_PATHS.values()), ids=list(POLICY_PATHS))
@pytest.mark.usefixtures("no_yaml_parsing")
def test_a_policy_over_the_size_limit_is_refused_413_before_it_is_parsed(installation: Installation, path: str) -> None:
    response = yaml_post(installation.client("dpo"), path, HUGE)
    assert response.status_code == 413, response.text
    assert response.json()["title"] == "policy too large"
    assert f"over {MAX_POLICY_BYTES // 1024} KiB" in response.json()["detail"]


@pytest.mark.usefixtures("no_yaml_parsing")
def test_a_policy_of_aliases_of_aliases_is_refused_422_before_it_is_expanded(installation: Installation) -> None:
    response = yaml_post(installation.client("dpo"), POLICY_PATHS["validation"], LAUGHS)
    assert response.status_code == 422, response.text
    assert response.json()["detail"].endswith(f"too many aliases (more than {MAX_POLICY_ALIASES})")


def test_the_three_libraries_policy_is_well_within_the_limits() -> None:
    text = POLICY.read_text(encoding="utf-8")
    assert len(text.encode("utf-8")) * 5 < MAX_POLICY_BYTES
    assert loading.yaml_too_deep(text, limit=MAX_POLICY_DEPTH // 3) is None
    assert loading.parse_policy(text).revision


@pytest.mark.parametrize(
    ("text", "said"), [(DEEP_FLOW, "nested too deeply"), (HUGE, "over 512 KiB")], ids=["deep", "huge"]
)
def test_kodex_policy_check_refuses_a_deep_or_huge_policy_file_with_exit_3(
    tmp_path: Path, text: str, said: str, no_yaml_parsing: None
) -> None:
    candidate = tmp_path / "candidate.yaml"
    candidate.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(cli, ["policy", "check", str(candidate)])
    assert result.exit_code == 3, result.output
    assert f"{candidate}:0:0: " in result.output
    assert said in result.output


# -- record lines ---------------------------------------------------------------------------------------------------


def nested_reader(depth: int) -> str:
    record = {"type": "reader", "library": "svkpk", "id": "SV-DEEP-1", "kind": "person", "debt": 0}
    text = json.dumps(record)
    return text[:-1] + ', "personal": ' + "[" * depth + "]" * depth + "}"


def test_an_imported_line_nested_5000_levels_deep_is_line_n_nested_too_deeply_not_a_500(
    installation: Installation,
) -> None:
    body = json.dumps({"type": "reader", "library": "svkpk", "id": "SV-FINE-1", "kind": "person"}) + "\n"
    body += nested_reader(5000) + "\n"
    response = installation.client("librarian").post("/v1/libraries/svkpk/records", content=body.encode())
    assert response.status_code == 422, response.text
    assert response.json()["detail"] == "line 2: nested too deeply"
    assert response.json()["errors"] == [{"line": 2, "field": "", "message": "nested too deeply"}]


def test_kodex_import_of_a_line_nested_too_deeply_exits_4_naming_the_line(workspace: Workspace, tmp_path: Path) -> None:
    records = tmp_path / "records.jsonl"
    records.write_text(nested_reader(5000) + "\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["import", str(records)])
    assert result.exit_code == 4, result.output
    assert "line 1: nested too deeply" in result.output


@pytest.mark.parametrize(
    ("line", "too_deep"),
    [
        (nested_reader(MAX_RECORD_DEPTH - 1), False),  # the record's own object is one level
        (nested_reader(MAX_RECORD_DEPTH), True),
        (json.dumps({"reason": "[" * 100 + "{" * 100}), False),  # brackets inside a string do not nest
        (json.dumps({"reason": 'a \\" [[[[' + "]" * 50}) + "[" * 40, True),  # an escaped quote does not end it
    ],
    ids=["at the limit", "one past it", "brackets in a string", "escaped quote"],
)
def test_a_lines_nesting_is_counted_without_parsing_it(line: str, too_deep: bool) -> None:
    assert json_too_deep(line) is too_deep


# -- CPU-heavy requests take turns ----------------------------------------------------------------------------------


async def until(condition: Callable[[], bool], what: str) -> None:
    """Wait for the app to reach a state (bounded, so a broken limiter fails the test instead of hanging it)."""
    for _ in range(3000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never reached: {what}")


def test_heavy_requests_beyond_the_slots_wait_their_turn_while_cheap_requests_answer(
    installation: Installation, ruleset: Ruleset, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = create_app(installation.work, ruleset)
    slots: HeavySlots = app.state.heavy
    assert slots.slots == load_settings().heavy_requests == 2
    waiting_too = 4
    inside, most, lock, release = 0, 0, threading.Lock(), threading.Event()

    def standing_in_for_the_work(text: str) -> Ruleset:  # blocks a worker thread until the test releases it
        nonlocal inside, most
        with lock:
            inside += 1
            most = max(most, inside)
        try:
            release.wait(60)
        finally:
            with lock:
                inside -= 1
        return ruleset

    monkeypatch.setattr(policy_routes, "_compile", standing_in_for_the_work)
    monkeypatch.setattr(policy_routes, "run_examples", lambda candidate: [])
    dpo = {"Authorization": f"Bearer {installation.tokens['dpo']}"}

    async def scenario() -> tuple[list[httpx.Response], list[httpx.Response]]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            heavy = [
                asyncio.create_task(
                    client.post("/v1/policy/validation", content=b"kodex: 1\n", headers=dpo | YAML_TYPE)
                )
                for _ in range(slots.slots + waiting_too)
            ]
            await until(
                lambda: inside == slots.slots and slots.limiter.statistics().tasks_waiting == waiting_too,
                "two heavy requests at work and four waiting",
            )
            cheap = [
                await client.get("/health"),
                await client.get("/v1/policy", headers=dpo),  # a token check and a read, in a thread of the pool
                await client.get("/v1/libraries/svkpk/readers/SV-NONE", headers=dpo),
            ]
            assert inside == slots.slots  # the heavy ones are still held while the cheap ones answered
            release.set()
            return list(await asyncio.gather(*heavy)), cheap

    heavy, cheap = asyncio.run(scenario())
    assert [r.status_code for r in cheap] == [200, 200, 404]
    assert [r.status_code for r in heavy] == [200] * (slots.slots + waiting_too)
    assert all(r.json()["valid"] for r in heavy)
    assert most == slots.slots
