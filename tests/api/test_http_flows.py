"""The HTTP API end to end (TestClient): not_onboarded, users, requests, holds, exceptions, proposals, runs, policy.

Each test works on a fresh installation on the engine CI chose. Users are added through the service layer (as
`kodex users add` does) unless the test is about issuing them through the API. Nightly runs are started through
the API as the scheduler would (POST …/runs with an `as_of`); the background task finishes inside the TestClient
call, so the run's status is final when the answer arrives.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from kodex.api.cli import app as cli
from kodex.api.web import create_app
from kodex.config import load_settings
from kodex.rules.periods import Period, add_period
from kodex.rules.ruleset import Ruleset
from kodex.services.instructions import list_instructions, record_outcome
from kodex.services.setup import Workspace, initialise, open_workspace
from kodex.services.users import add_user
from kodex.store.schema import camera_recordings, loans, readers, runs, users
from tests.retention.support import CURRENT, EXPELLED, LAPSED, OWING, PERSONAL, incident, loan, person, with_recordings
from tests.support import POLICY

INTEGRATION = {"type": "user", "id": "u-integration", "role": "librarian"}

PRAGUE = ZoneInfo("Europe/Prague")
NIGHT = "2026-11-22"
NEXT_NIGHT = "2026-11-23"
LATER_NIGHT = "2026-11-24"


def ndjson(records: Iterable[Mapping[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def today() -> date:
    """Today as the service counts it for svkpk (its time zone)."""
    return datetime.now(PRAGUE).date()


@dataclass
class Api:
    """The app over a workspace, and a user (token) per library and role, added on first use."""

    client: TestClient
    work: Workspace
    ruleset: Ruleset
    tokens: dict[tuple[str | None, str], str] = field(default_factory=dict)
    user_ids: dict[tuple[str | None, str], str] = field(default_factory=dict)

    def token(self, role: str, library: str | None = "svkpk") -> str:
        key = (None if role == "operator" else library, role)
        if key not in self.tokens:
            user, token = add_user(self.work.engine, self.work.master, key[0], role, f"Test {role} of {library}")
            self.tokens[key], self.user_ids[key] = token, user.id
        return self.tokens[key]

    def user_id(self, role: str, library: str = "svkpk") -> str:
        self.token(role, library)
        return self.user_ids[(library, role)]

    def call(self, method: str, path: str, role: str, library: str | None = "svkpk", **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token(role, library)}", **kw.pop("headers", {})}
        return self.client.request(method, path, headers=headers, **kw)

    def ok(self, method: str, path: str, role: str, library: str | None = "svkpk", **kw: Any) -> Any:
        response = self.call(method, path, role, library, **kw)
        assert response.status_code in {200, 201, 202, 204}, response.text
        return response.json() if response.content else None

    def load(self, records: Iterable[Mapping[str, Any]], library: str = "svkpk") -> dict[str, Any]:
        body = ndjson(records)
        result: dict[str, Any] = self.ok(
            "POST", f"/v1/libraries/{library}/records", "librarian", library,
            content=body.encode(), headers={"Content-Type": "application/x-ndjson"},
        )  # fmt: skip
        return result

    def night(self, as_of: str, library: str = "svkpk", **options: Any) -> dict[str, Any]:
        """A real run started through the API as the scheduler; its finished status."""
        started = self.ok(
            "POST", f"/v1/libraries/{library}/runs", "scheduler", library, json={"as_of": as_of, **options}
        )
        finished: dict[str, Any] = self.ok("GET", f"/v1/libraries/{library}/runs/{started['id']}", "scheduler", library)
        assert finished["status"] == "finished", finished
        return finished

    def reader(self, record_id: str, library: str = "svkpk") -> dict[str, Any]:
        found: dict[str, Any] = self.ok("GET", f"/v1/libraries/{library}/readers/{record_id}", "dpo", library)
        return found

    def log(self, library: str = "svkpk", **where: str) -> list[dict[str, Any]]:
        page = self.ok("GET", f"/v1/libraries/{library}/decisions", "dpo", library, params={**where, "limit": 1000})
        entries: list[dict[str, Any]] = page["entries"]
        return entries


@pytest.fixture
def api(workspace: Workspace, ruleset: Ruleset, tmp_path: Path) -> Iterator[Api]:
    """The app over an installation whose recordings folders are tmp_path/cctv/<library>."""
    work = with_recordings(workspace, tmp_path / "cctv")
    with TestClient(create_app(work, ruleset)) as client:
        yield Api(client, work, ruleset)


@pytest.fixture
def not_onboarded(kodex_env: dict[str, str], ruleset: Ruleset, tmp_path: Path) -> Iterator[Api]:
    """An installation after `kodex init` only: no library has a data-processing agreement yet."""
    settings = load_settings()
    initialise(settings, ruleset)
    work = with_recordings(open_workspace(settings), tmp_path / "cctv")
    with TestClient(create_app(work, ruleset)) as client:
        yield Api(client, work, ruleset)
    work.engine.dispose()


def summary_counts(run: Mapping[str, Any]) -> dict[tuple[str, str], int]:
    return {(d["action"], d["outcome"]): d["count"] for d in run["summary"]["decisions"]}


# -- not_onboarded (ZÍSKEJ, seed 000) ---------------------------------------------------------------------------------


def test_the_operator_onboards_a_library_with_an_admin_whose_token_is_shown_once_and_stored_only_as_its_hash(
    not_onboarded: Api,
) -> None:
    response = not_onboarded.call(
        "POST", "/v1/libraries", "operator", json={"id": "svkpk", "admin_name": "Petra Správcová"}
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["library"]["id"] == "svkpk"
    assert body["library"]["agreement"] is None  # takes no personal data yet
    admin, token = body["admin"], body["admin"]["token"]
    assert (admin["library"], admin["role"], admin["revoked"]) == ("svkpk", "library_admin", False)
    with not_onboarded.work.engine.connect() as connection:
        rows = [dict(row._mapping) for row in connection.execute(select(users))]
    (row,) = [r for r in rows if r["id"] == admin["id"]]
    assert row["token_hash"] == hashlib.sha256(token.encode()).hexdigest()
    for stored in rows:  # no column of any user holds the token, nor the admin's name in clear
        for value in stored.values():
            raw = bytes(value) if isinstance(value, (bytes, memoryview)) else str(value).encode()
            assert token.encode() not in raw
            assert "Petra Správcová".encode() not in raw
    # the token is never shown again: the users list has none
    listed = not_onboarded.ok("GET", "/v1/libraries/svkpk/users", "operator")
    assert [u["token"] for u in listed] == [None]
    # and it works
    headers = {"Authorization": f"Bearer {token}"}
    assert not_onboarded.client.get("/v1/libraries/svkpk", headers=headers).status_code == 200


def test_no_personal_data_is_accepted_until_the_data_processing_agreement_is_recorded(
    not_onboarded: Api, tmp_path: Path
) -> None:
    not_onboarded.ok("POST", "/v1/libraries", "operator", json={"id": "svkpk", "admin_name": "Petra Správcová"})
    recording = {
        "id": "cam-1", "camera": "entrance", "start": "2026-11-20T10:00:00+01:00", "end": "2026-11-20T11:00:00+01:00",
        "location": str(not_onboarded.work.settings.recordings.folder("svkpk") / "cam-1.mp4"),
    }  # fmt: skip
    body, ndjson_type = ndjson([CURRENT]).encode(), {"Content-Type": "application/x-ndjson"}

    refused_import = not_onboarded.call(
        "POST", "/v1/libraries/svkpk/records", "librarian", content=body, headers=ndjson_type
    )
    refused_camera = not_onboarded.call("POST", "/v1/libraries/svkpk/camera-recordings", "librarian", json=recording)

    assert (refused_import.status_code, refused_camera.status_code) == (409, 409)
    assert refused_import.json()["title"] == "no data-processing agreement"
    with not_onboarded.work.engine.connect() as connection:
        assert connection.execute(select(readers.c.id)).all() == []
        assert connection.execute(select(camera_recordings.c.id)).all() == []

    agreed = not_onboarded.ok(
        "PUT", "/v1/libraries/svkpk/agreement", "operator", json={"signed_on": "2026-01-05", "reference": "DPA-7"}
    )
    assert agreed["agreement"] == {"signed_on": "2026-01-05", "reference": "DPA-7"}
    assert (
        not_onboarded.call(
            "POST", "/v1/libraries/svkpk/records", "librarian", content=body, headers=ndjson_type
        ).status_code
        == 200
    )
    assert (
        not_onboarded.call("POST", "/v1/libraries/svkpk/camera-recordings", "librarian", json=recording).status_code
        == 201
    )


@pytest.mark.parametrize("location", ["master.key", "{folder}/../../home/master.key", "{home}/master.key"])
def test_librarian_cannot_register_a_recording_outside_the_recordings_folder(api: Api, location: str) -> None:
    home = api.work.settings.home
    where = location.format(folder=api.work.settings.recordings.folder("svkpk"), home=home)
    key = home / "master.key"
    recording = {"id": "cam-1", "camera": "entrance", "start": "2026-11-10T10:00:00+01:00",
                 "end": "2026-11-10T11:00:00+01:00", "location": where}  # fmt: skip

    refused = api.call("POST", "/v1/libraries/svkpk/camera-recordings", "librarian", json=recording)
    pushed = api.call(
        "POST", "/v1/libraries/svkpk/records", "librarian", content=ndjson([{"type": "camera_recording",
        "library": "svkpk", **recording}]).encode(), headers={"Content-Type": "application/x-ndjson"},
    )  # fmt: skip

    for answer in (refused, pushed):
        assert answer.status_code == 422
        assert answer.json()["errors"] == [{"line": 1, "field": "location", "message": "outside the recordings folder"}]
        assert where not in answer.text
    with api.work.engine.connect() as connection:
        assert connection.execute(select(camera_recordings.c.id)).all() == []
    api.night(NIGHT)
    assert key.exists()


def test_an_exception_grant_is_refused_with_409_until_the_agreement_is_recorded(not_onboarded: Api) -> None:
    not_onboarded.ok("POST", "/v1/libraries", "operator", json={"id": "svkpk", "admin_name": "Petra Správcová"})
    grant = {
        "subject": "SV-CURRENT", "rule": "svkpk.retention.after_settlement", "reason": "abroad",
        "from": "2026-11-01", "until": "2027-03-31",
    }  # fmt: skip

    refused = not_onboarded.call("POST", "/v1/libraries/svkpk/exceptions", "director", json=grant)

    assert refused.status_code == 409, refused.text


def test_a_library_the_policy_has_no_rules_for_is_not_onboarded(not_onboarded: Api) -> None:
    refused = not_onboarded.call("POST", "/v1/libraries", "operator", json={"id": "nowhere", "admin_name": "Nikdo"})

    assert refused.status_code == 422
    assert refused.json()["title"] == "library not in the policy"
    assert [lib["id"] for lib in not_onboarded.ok("GET", "/v1/libraries", "operator")] == ["kntb", "svkpk", "zdirec"]
    # and only the operator onboards
    assert (
        not_onboarded.call(
            "POST", "/v1/libraries", "library_admin", json={"id": "svkpk", "admin_name": "X"}
        ).status_code
        == 403
    )


# -- users ----------------------------------------------------------------------------------------------------------


def test_an_admin_issues_a_token_that_works_and_a_revoked_token_is_refused_at_once(api: Api) -> None:
    issued = api.ok("POST", "/v1/libraries/svkpk/users", "library_admin", json={"role": "dpo", "name": "Eva Pověřená"})
    headers = {"Authorization": f"Bearer {issued['token']}"}
    assert (issued["library"], issued["role"]) == ("svkpk", "dpo")
    assert api.client.get("/v1/libraries/svkpk/requests", headers=headers).status_code == 200

    assert api.call("DELETE", f"/v1/libraries/svkpk/users/{issued['id']}", "library_admin").status_code == 204

    refused = api.client.get("/v1/libraries/svkpk/requests", headers=headers)
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"] == "Bearer"
    listed = {u["id"]: u for u in api.ok("GET", "/v1/libraries/svkpk/users", "library_admin")}
    assert listed[issued["id"]]["revoked"] is True
    assert api.call("DELETE", f"/v1/libraries/svkpk/users/{issued['id']}", "library_admin").status_code == 404


def test_an_admin_acts_only_in_its_own_library_and_an_unknown_token_is_401(api: Api) -> None:
    operator = api.call("POST", "/v1/libraries/svkpk/users", "library_admin", json={"role": "operator", "name": "X"})
    assert operator.status_code == 403  # api.auth.ISSUES: no admin issues an operator token
    other = api.call("POST", "/v1/libraries/kntb/users", "library_admin", json={"role": "dpo", "name": "X"})
    assert other.status_code == 403
    assert api.call("POST", "/v1/libraries/svkpk/users", "dpo", json={"role": "dpo", "name": "X"}).status_code == 403
    unknown = api.client.get("/v1/libraries/svkpk/requests", headers={"Authorization": "Bearer kodex_nonsense"})
    assert unknown.status_code == 401
    assert api.client.get("/v1/libraries/svkpk/requests").status_code == 401


# -- data-subject requests ---------------------------------------------------------------------------------------


def test_an_erasure_request_answer_says_due_for_a_reader_without_obligations_and_not_due_with_a_debt(
    api: Api,
) -> None:
    api.load([CURRENT, OWING])

    free = api.ok("POST", "/v1/libraries/svkpk/requests", "dpo",
                  json={"reader": "SV-CURRENT", "kind": "erasure", "received_on": "2026-11-15"})  # fmt: skip
    owing = api.ok("POST", "/v1/libraries/svkpk/requests", "dpo",
                   json={"reader": "SV-OWING", "kind": "erasure", "received_on": "2026-11-15"})  # fmt: skip

    assert [(w["rule"], w["action"], w["status"]) for w in free["will"]] == [
        ("svkpk.erasure.cancellation_on_request", "anonymise", "due")
    ]
    assert free["summary"] == "the next nightly run carries it out"
    assert [(w["rule"], w["status"]) for w in owing["will"]] == [("svkpk.erasure.cancellation_on_request", "not_due")]
    assert any(r["holds"] is False for r in owing["will"][0]["reasons"])  # "not obligations" does not hold
    assert (free["request"]["status"], free["request"]["reader"]) == ("open", "SV-CURRENT")


def test_an_erasure_request_answer_says_blocked_when_a_legal_hold_keeps_the_data(api: Api) -> None:
    api.load([CURRENT])
    api.ok("PUT", "/v1/libraries/svkpk/readers/SV-CURRENT/legal-hold", "dpo", json={"reason": "handed to the police"})

    answer = api.ok("POST", "/v1/libraries/svkpk/requests", "dpo",
                    json={"reader": "SV-CURRENT", "kind": "erasure", "received_on": "2026-11-15"})  # fmt: skip

    assert [w["status"] for w in answer["will"]] == ["blocked"]
    assert answer["summary"].startswith("not carried out: an exception or a legal hold")


def test_a_request_no_rule_of_the_library_acts_on_says_so_and_stays_on_the_due_list(api: Api) -> None:
    """SVK PK's regulation has no loan-history erasure (DESIGN.md catalogue): the dpo must answer it by hand."""
    api.load([CURRENT])

    answer = api.ok("POST", "/v1/libraries/svkpk/requests", "dpo",
                    json={"reader": "SV-CURRENT", "kind": "loan_history_erasure", "received_on": "2026-11-15"})  # fmt: skip

    assert answer["will"] == []
    assert answer["summary"].startswith("no rule of this library's policy acts on this kind of request")
    api.night(NIGHT)
    due = api.ok("GET", "/v1/libraries/svkpk/requests", "dpo", params={"due_within": 30})
    assert [(r["id"], r["status"]) for r in due] == [(answer["request"]["id"], "open")]


def test_a_request_is_due_one_calendar_month_after_receipt_clamped_to_the_months_last_day(api: Api) -> None:
    api.load([CURRENT, OWING])

    clamped = api.ok("POST", "/v1/libraries/svkpk/requests", "dpo",
                     json={"reader": "SV-CURRENT", "kind": "erasure", "received_on": "2026-01-31"})  # fmt: skip
    plain = api.ok("POST", "/v1/libraries/svkpk/requests", "dpo",
                   json={"reader": "SV-OWING", "kind": "erasure", "received_on": "2026-03-15"})  # fmt: skip

    assert clamped["request"]["due_on"] == "2026-02-28"
    assert plain["request"]["due_on"] == "2026-04-15"


def test_the_dpos_due_list_shows_overdue_and_due_within_7_days_but_not_later_requests(api: Api) -> None:
    api.load([CURRENT, OWING, person("svkpk", "SV-LATER", renewed_at="2026-01-10")])
    day, month = today(), Period.parse("1 month")
    received = {"SV-OWING": day - timedelta(days=40), "SV-CURRENT": day - timedelta(days=25),
                "SV-LATER": day - timedelta(days=10)}  # fmt: skip
    filed = {}
    for who, on in received.items():
        answer = api.ok("POST", "/v1/libraries/svkpk/requests", "dpo",
                        json={"reader": who, "kind": "erasure", "received_on": on.isoformat()})  # fmt: skip
        filed[who] = answer["request"]
        assert answer["request"]["due_on"] == add_period(on, month).isoformat()

    due = api.ok("GET", "/v1/libraries/svkpk/requests", "dpo", params={"due_within": 7})

    assert [(r["reader"], r["overdue"]) for r in due] == [("SV-OWING", True), ("SV-CURRENT", False)]
    assert len(api.ok("GET", "/v1/libraries/svkpk/requests", "dpo")) == 3
    assert api.call("GET", "/v1/libraries/svkpk/requests", "director").status_code == 403  # the dpo's list


def test_after_the_nightly_run_the_reader_is_anonymised_and_the_request_unlinked_and_done_with_its_instruction(
    api: Api,
) -> None:
    api.load([CURRENT, OWING])
    for who in ("SV-CURRENT", "SV-OWING"):
        api.ok("POST", "/v1/libraries/svkpk/requests", "dpo",
               json={"reader": who, "kind": "erasure", "received_on": "2026-11-15"})  # fmt: skip

    run = api.night(NIGHT)

    assert summary_counts(run)[("anonymise", "applied")] == 1
    assert api.reader("SV-CURRENT")["state"] == "anonymised"
    assert api.reader("SV-OWING")["state"] == "active"  # owes: kept, its request stays open
    # issue 18: the request waits, open, for its instruction to the library system; done when that is done
    (instruction,) = list_instructions(api.work.engine, api.ruleset, api.work.master, "svkpk")
    waiting = api.ok("GET", "/v1/libraries/svkpk/requests", "dpo", params={"status": "open"})
    assert sorted((r["reader"] or "", r["instruction"]) for r in waiting) == [
        ("", instruction.id), ("SV-OWING", None)
    ]  # fmt: skip
    record_outcome(api.work.engine, api.ruleset, api.work.master, "svkpk", instruction.id, "done", actor=INTEGRATION)
    done = api.ok("GET", "/v1/libraries/svkpk/requests", "dpo", params={"status": "done"})
    assert [(r["reader"], r["kind"], r["status"]) for r in done] == [(None, "erasure", "done")]
    assert done[0]["done_at"] is not None
    still = api.ok("GET", "/v1/libraries/svkpk/requests", "dpo", params={"status": "open"})
    assert [r["reader"] for r in still] == ["SV-OWING"]
    # an anonymised reader takes no new request: kodex holds nothing to erase
    again = api.call("POST", "/v1/libraries/svkpk/requests", "dpo", json={"reader": "SV-CURRENT", "kind": "erasure"})
    assert again.status_code == 422


def test_a_loan_history_erasure_request_erases_returned_loans_and_the_registration_stays(api: Api) -> None:
    zd = person("zdirec", "ZD-1", renewed_at="2026-02-01", debt=0, active_loans=1)
    records = [
        zd,
        loan("zdirec", "L-1", "ZD-1", returned_at="2026-02-01"),
        loan("zdirec", "L-2", "ZD-1", returned_at="2026-03-01"),
        loan("zdirec", "L-3", "ZD-1", due_at="2026-12-01"),  # still out: an obligation, it stays
    ]
    api.load(records, "zdirec")

    answer = api.ok("POST", "/v1/libraries/zdirec/requests", "dpo", "zdirec",
                    json={"reader": "ZD-1", "kind": "loan_history_erasure", "received_on": "2026-11-15"})  # fmt: skip
    assert [(w["action"], w["status"]) for w in answer["will"]] == [("erase_loan_history", "due")]
    api.night(NIGHT, "zdirec")

    with api.work.engine.connect() as connection:
        assert connection.execute(select(loans.c.id).where(loans.c.library == "zdirec")).scalars().all() == ["L-3"]
    status = api.ok("GET", "/v1/libraries/zdirec/readers/ZD-1", "dpo", "zdirec")
    assert status["state"] == "active"
    (request,) = api.ok("GET", "/v1/libraries/zdirec/requests", "dpo", "zdirec")
    (instruction,) = list_instructions(api.work.engine, api.ruleset, api.work.master, "zdirec")
    # issue 18: open until the library system has erased it too
    assert (request["status"], request["reader"], request["instruction"]) == ("open", "ZD-1", instruction.id)
    # the erased loans are not taken in again
    assert api.load(records, "zdirec")["gone"] == {"loan": 2}


def test_a_second_identical_open_request_is_not_duplicated(api: Api) -> None:
    api.load([CURRENT])
    wanted = {"reader": "SV-CURRENT", "kind": "erasure", "received_on": "2026-11-15"}

    first = api.ok("POST", "/v1/libraries/svkpk/requests", "dpo", json=wanted)
    second = api.ok("POST", "/v1/libraries/svkpk/requests", "librarian", json={**wanted, "received_on": "2026-11-18"})

    assert second["request"] == first["request"]
    assert len(api.ok("GET", "/v1/libraries/svkpk/requests", "dpo")) == 1
    other = api.ok("POST", "/v1/libraries/svkpk/requests", "dpo", json={**wanted, "kind": "loan_history_erasure"})
    assert other["request"]["id"] != first["request"]["id"]  # another kind is another request


# -- legal holds ------------------------------------------------------------------------------------------------------


def test_a_dpos_legal_hold_keeps_a_reader_the_run_would_anonymise_and_survives_a_reimport(api: Api) -> None:
    api.load([LAPSED])
    held = api.ok("PUT", "/v1/libraries/svkpk/readers/SV-LAPSED/legal-hold", "dpo",
                  json={"reason": "handed to the police, čl. 9 odst. 6", "until": None})  # fmt: skip
    assert (held["subject_type"], held["subject"], held["until"]) == ("reader", "SV-LAPSED", None)

    first = api.night(NIGHT)

    assert summary_counts(first).get(("anonymise", "applied")) is None
    assert summary_counts(first)[("retain", "retained")] == 1
    (retained,) = api.log(outcome="retained")
    assert (retained["rule"], retained["details"]["blocked_action"]) == (
        "svkpk.retention.after_settlement",
        "anonymise",
    )
    assert retained["details"]["legal_hold"] == {"until": None}
    assert "police" not in json.dumps(retained)

    changed = {**LAPSED, "personal": {**PERSONAL, "email": "jana@example.org"}, "legal_hold": None}
    assert api.load([changed])["updated"] == {"reader": 1}
    api.night(NEXT_NIGHT)
    status = api.reader("SV-LAPSED")
    assert (status["state"], status["legal_hold"]) == ("lapsed", True)  # its card lapsed; its data are kept

    assert api.call("DELETE", "/v1/libraries/svkpk/readers/SV-LAPSED/legal-hold", "dpo").status_code == 204
    released = api.night(LATER_NIGHT)

    assert summary_counts(released)[("anonymise", "applied")] == 1
    assert api.reader("SV-LAPSED")["state"] == "anonymised"


def test_without_a_hold_the_lapsed_reader_is_anonymised_on_the_same_night(api: Api) -> None:
    api.load([LAPSED])

    assert summary_counts(api.night(NIGHT))[("anonymise", "applied")] == 1
    assert api.reader("SV-LAPSED")["state"] == "anonymised"


def test_a_hold_on_a_camera_recording_keeps_it_past_its_7_day_purge(api: Api, tmp_path: Path) -> None:
    cctv = api.work.settings.recordings.folder("svkpk")
    files = {name: cctv / f"{name}.mp4" for name in ("cam-held", "cam-free")}
    for name, path in files.items():
        path.write_bytes(b"video")
        api.ok("POST", "/v1/libraries/svkpk/camera-recordings", "librarian", json={
            "id": name, "camera": "entrance", "start": "2026-11-10T10:00:00+01:00",
            "end": "2026-11-10T11:00:00+01:00", "location": str(path),
        })  # fmt: skip
    api.ok("PUT", "/v1/libraries/svkpk/camera-recordings/cam-held/legal-hold", "dpo",
           json={"reason": "handed to the police"})  # fmt: skip

    run = api.night(NIGHT)

    counts = summary_counts(run)
    assert (counts[("purge", "applied")], counts[("retain", "retained")]) == (1, 1)
    with api.work.engine.connect() as connection:
        assert connection.execute(select(camera_recordings.c.id)).scalars().all() == ["cam-held"]
    assert files["cam-held"].exists()
    assert not files["cam-free"].exists()


def test_only_a_dpo_sets_a_legal_hold_and_an_unknown_subject_is_404(api: Api) -> None:
    api.load([CURRENT])
    body = {"reason": "court order"}
    assert (
        api.call("PUT", "/v1/libraries/svkpk/readers/SV-CURRENT/legal-hold", "director", json=body).status_code == 403
    )
    assert api.call("PUT", "/v1/libraries/svkpk/readers/SV-NOBODY/legal-hold", "dpo", json=body).status_code == 404
    assert api.call("DELETE", "/v1/libraries/svkpk/readers/SV-CURRENT/legal-hold", "dpo").status_code == 404


# -- exceptions ----------------------------------------------------------------------------------------------------

GRANT = {
    "subject": "SV-LAPSED", "rule": "svkpk.retention.after_settlement",
    "reason": "the reader's estate is being settled, ask the notary Dr. Novák", "from": "2026-11-01",
    "until": "2027-03-31",
}  # fmt: skip


def test_a_director_grants_an_exception_that_is_logged_naming_the_user_not_the_reason_or_the_name(api: Api) -> None:
    api.load([LAPSED])

    granted = api.ok("POST", "/v1/libraries/svkpk/exceptions", "director", json=GRANT)

    assert (granted["subject"], granted["rule"], granted["role"]) == ("SV-LAPSED", GRANT["rule"], "director")
    assert (granted["from"], granted["until"], granted["revoked_as_of"]) == ("2026-11-01", "2027-03-31", None)
    assert granted["granted_by"] == "Test director of svkpk"
    assert granted["reason"] == GRANT["reason"]
    (entry,) = api.log(kind="exception_granted")
    assert entry["actor"] == {"type": "user", "id": api.user_id("director"), "role": "director"}
    assert (entry["rule"], entry["outcome"], entry["subject_type"]) == (GRANT["rule"], "granted", "reader")
    assert entry["details"] == {"role": "director", "from": "2026-11-01", "until": "2027-03-31"}
    logged = json.dumps(entry, ensure_ascii=False)
    for personal in ("Novák", "notary", "Test director", "SV-LAPSED", granted["id"]):
        assert personal not in logged
    # and it holds the rule back: the lapsed reader is not anonymised
    run = api.night(NIGHT)
    assert summary_counts(run)[("retain", "retained")] == 1
    assert api.reader("SV-LAPSED")["state"] == "lapsed"  # its card lapsed; its data are kept


def test_an_exception_to_a_rule_that_allows_none_is_refused_with_422(api: Api) -> None:
    api.load([LAPSED])

    refused = api.call(
        "POST", "/v1/libraries/svkpk/exceptions", "director",
        json={**GRANT, "rule": "svkpk.erasure.cancellation_on_request"},
    )  # fmt: skip

    assert refused.status_code == 422
    assert "allows no exceptions" in json.dumps(refused.json())
    assert api.ok("GET", "/v1/libraries/svkpk/exceptions", "dpo") == []
    assert api.log(kind="exception_granted") == []


@pytest.mark.parametrize("role", ["dpo", "librarian", "library_admin"])
def test_only_a_director_grants_an_exception_through_the_api(api: Api, role: str) -> None:
    api.load([LAPSED])

    assert api.call("POST", "/v1/libraries/svkpk/exceptions", role, json=GRANT).status_code == 403
    assert api.ok("GET", "/v1/libraries/svkpk/exceptions", "dpo") == []


def test_a_revoked_exception_is_logged_and_stops_applying_at_the_next_run_and_the_dpo_lists_all(api: Api) -> None:
    api.load([LAPSED, CURRENT])
    granted = api.ok("POST", "/v1/libraries/svkpk/exceptions", "director", json=GRANT)
    other = api.ok("POST", "/v1/libraries/svkpk/exceptions", "director",
                   json={**GRANT, "subject": "SV-CURRENT", "id": "E-CURRENT"})  # fmt: skip
    api.night(NIGHT)
    assert api.reader("SV-LAPSED")["state"] == "lapsed"

    revoked = api.ok(
        "POST", f"/v1/libraries/svkpk/exceptions/{granted['id']}/revocation", "director", json={"as_of": NIGHT}
    )

    assert revoked["revoked_as_of"] == NIGHT
    (entry,) = api.log(kind="exception_revoked")
    assert entry["actor"] == {"type": "user", "id": api.user_id("director"), "role": "director"}
    assert (entry["rule"], entry["outcome"]) == (GRANT["rule"], "revoked")
    run = api.night(NEXT_NIGHT)
    assert summary_counts(run)[("anonymise", "applied")] == 1
    assert api.reader("SV-LAPSED")["state"] == "anonymised"
    # the dpo lists them all: the other one, and none of the anonymised reader's (they went with its data)
    listed = api.ok("GET", "/v1/libraries/svkpk/exceptions", "dpo")
    assert [(e["id"], e["revoked_as_of"]) for e in listed] == [(other["id"], None)]
    # revoking twice, or as a dpo, is refused
    assert (
        api.call("POST", f"/v1/libraries/svkpk/exceptions/{granted['id']}/revocation", "director", json={}).status_code
        == 404
    )
    assert api.call("POST", "/v1/libraries/svkpk/exceptions/E-CURRENT/revocation", "dpo", json={}).status_code == 403


def test_an_exception_for_an_anonymised_reader_is_refused_with_a_problem_not_a_500(api: Api) -> None:
    api.load([LAPSED])
    api.night(NIGHT)
    assert api.reader("SV-LAPSED")["state"] == "anonymised"

    refused = api.call("POST", "/v1/libraries/svkpk/exceptions", "director", json=GRANT)

    assert refused.status_code in {404, 422}, refused.text


def test_a_director_cannot_grant_an_exception_longer_than_the_librarys_maximum(api: Api) -> None:
    api.load([LAPSED])

    refused = api.call("POST", "/v1/libraries/svkpk/exceptions", "director", json={**GRANT, "until": "2027-11-02"})

    assert refused.status_code == 422
    (problem,) = refused.json()["errors"]
    assert (problem["field"], problem["message"]) == (
        "until", "an exception lasts at most 1 year from its first day "
        "(GDPR čl. 5 odst. 1 písm. e); KŘ čl. 35 sets no longest period)",
    )  # fmt: skip
    assert api.ok("GET", "/v1/libraries/svkpk/exceptions", "dpo") == []


def test_a_director_cannot_backdate_a_revocation_before_the_exceptions_first_day(api: Api) -> None:
    api.load([LAPSED])
    granted = api.ok("POST", "/v1/libraries/svkpk/exceptions", "director", json=GRANT)  # from 2026-11-01
    revocation = f"/v1/libraries/svkpk/exceptions/{granted['id']}/revocation"

    refused = api.call("POST", revocation, "director", json={"as_of": "2026-10-31"})

    assert refused.status_code == 422
    assert "before the exception's first day (2026-11-01)" in refused.json()["detail"]
    assert api.log(kind="exception_revoked") == []
    assert api.ok("POST", revocation, "director", json={"as_of": "2026-11-01"})["revoked_as_of"] == "2026-11-01"


def test_the_dpo_lists_revoked_exceptions_too(api: Api) -> None:
    api.load([CURRENT])
    first = api.ok("POST", "/v1/libraries/svkpk/exceptions", "director", json={**GRANT, "subject": "SV-CURRENT"})
    api.ok("POST", f"/v1/libraries/svkpk/exceptions/{first['id']}/revocation", "director", json={})  # as of today
    second = api.ok("POST", "/v1/libraries/svkpk/exceptions", "director",
                    json={**GRANT, "subject": "SV-CURRENT", "until": "2027-06-30"})  # fmt: skip

    listed = api.ok("GET", "/v1/libraries/svkpk/exceptions", "dpo")

    assert [(e["id"], e["revoked_as_of"]) for e in listed] == [(first["id"], today().isoformat()), (second["id"], None)]


# -- proposals ----------------------------------------------------------------------------------------------------


def open_proposals(api: Api) -> dict[str, dict[str, Any]]:
    found = api.ok("GET", "/v1/libraries/svkpk/proposals", "director")
    return {p["reader"]: p for p in found}


def test_a_reader_expelled_twice_gets_an_exclusion_proposal_and_one_expelled_once_does_not(api: Api) -> None:
    api.load(EXPELLED)

    run = api.night(NIGHT)

    assert summary_counts(run)[("propose_exclusion", "proposed")] == 2
    proposals = open_proposals(api)
    assert set(proposals) == {"SV-EX1", "SV-EX2"}
    assert {(p["rule"], p["action"], p["decided_by"], p["status"]) for p in proposals.values()} == {
        ("svkpk.exclusion.repeated_expulsion", "propose_exclusion", "director", "open")
    }
    assert api.ok("GET", "/v1/libraries/svkpk/proposals", "dpo") == list(proposals.values())  # the dpo sees them


def test_an_accepted_exclusion_is_logged_blocks_and_excludes_the_reader_for_good(api: Api) -> None:
    api.load(EXPELLED)
    api.night(NIGHT)
    proposal = open_proposals(api)["SV-EX1"]

    decided = api.ok("POST", f"/v1/libraries/svkpk/proposals/{proposal['id']}/decision", "director",
                     json={"accept": True, "reason": "repeated expulsions, hearing of 20 Nov"})  # fmt: skip

    assert (decided["status"], decided["closed_as_of"]) == ("accepted", today().isoformat())
    (entry,) = api.log(kind="proposal_decided")
    assert (entry["outcome"], entry["rule"], entry["action"]) == ("accepted", proposal["rule"], "propose_exclusion")
    assert entry["actor"] == {"type": "user", "id": api.user_id("director"), "role": "director"}
    assert entry["details"] == {"proposal": proposal["id"]}
    assert "hearing" not in json.dumps(entry)
    status = api.reader("SV-EX1")
    assert status["services_blocked"] is True
    assert status["excluded_as_of"] is not None

    api.night(NEXT_NIGHT, full=True)  # every reader reviewed again

    status = api.reader("SV-EX1")
    assert (status["services_blocked"], status["excluded_as_of"]) == (True, decided["closed_as_of"])
    assert "SV-EX1" not in open_proposals(api)
    proposed = [e for e in api.log(kind="decision", action="propose_exclusion") if e["subject"] == entry["subject"]]
    assert len(proposed) == 1  # proposed once, on the first night


def test_a_rejected_exclusion_is_logged_changes_nothing_and_is_not_proposed_again(api: Api) -> None:
    api.load(EXPELLED)
    api.night(NIGHT)
    proposal = open_proposals(api)["SV-EX2"]

    decided = api.ok("POST", f"/v1/libraries/svkpk/proposals/{proposal['id']}/decision", "director",
                     json={"accept": False, "reason": "apologised in writing"})  # fmt: skip

    assert decided["status"] == "rejected"
    (entry,) = api.log(kind="proposal_decided")
    assert entry["outcome"] == "rejected"
    status = api.reader("SV-EX2")
    assert (status["services_blocked"], status["excluded_as_of"]) == (False, None)
    api.night(NEXT_NIGHT, full=True)
    assert "SV-EX2" not in open_proposals(api)
    assert api.reader("SV-EX2")["services_blocked"] is False
    rejected = api.ok("GET", "/v1/libraries/svkpk/proposals", "director", params={"status": "rejected"})
    assert [p["reader"] for p in rejected] == ["SV-EX2"]


def test_a_dpo_cannot_decide_a_proposal_and_deciding_twice_is_refused(api: Api) -> None:
    api.load(EXPELLED)
    api.night(NIGHT)
    proposal = open_proposals(api)["SV-EX1"]
    path = f"/v1/libraries/svkpk/proposals/{proposal['id']}/decision"

    assert api.call("POST", path, "dpo", json={"accept": True, "reason": "x"}).status_code == 403
    assert api.reader("SV-EX1")["services_blocked"] is False
    api.ok("POST", path, "director", json={"accept": True, "reason": "decided"})
    twice = api.call("POST", path, "director", json={"accept": False, "reason": "changed my mind"})

    assert twice.status_code == 422
    assert len(api.log(kind="proposal_decided")) == 1
    assert api.call("POST", "/v1/libraries/svkpk/proposals/nope/decision", "director",
                    json={"accept": True, "reason": "x"}).status_code == 404  # fmt: skip


# -- runs ------------------------------------------------------------------------------------------------------------


def test_a_dry_run_and_a_real_run_through_the_api_with_status_summary_and_plan(api: Api) -> None:
    api.load([LAPSED, CURRENT])

    started = api.ok("POST", "/v1/libraries/svkpk/runs", "dpo", json={"as_of": NIGHT, "dry_run": True})

    assert (started["status"], started["dry_run"]) == ("started", True)
    dry = api.ok("GET", f"/v1/libraries/svkpk/runs/{started['id']}", "dpo")
    assert (dry["status"], dry["as_of"]) == ("finished", NIGHT)
    assert dry["summary"]["reviewed"] == 2
    assert summary_counts(dry)[("anonymise", "applied")] == 1
    plan = api.ok("GET", f"/v1/libraries/svkpk/runs/{started['id']}/plan", "dpo")
    assert [(item["subject_id"], item["action"]) for item in plan] == [("SV-LAPSED", "anonymise")]
    assert api.reader("SV-LAPSED")["state"] == "active"  # a dry run changes nothing

    real = api.night(NIGHT)
    assert summary_counts(real)[("anonymise", "applied")] == 1
    assert api.reader("SV-LAPSED")["state"] == "anonymised"
    assert api.call("GET", f"/v1/libraries/svkpk/runs/{real['id']}/plan", "dpo").status_code == 404
    recent = api.ok("GET", "/v1/libraries/svkpk/runs", "auditor")
    assert {r["id"] for r in recent} == {started["id"], real["id"]}


def test_a_dpo_cannot_start_a_real_run(api: Api) -> None:
    api.load([LAPSED])

    refused = api.call("POST", "/v1/libraries/svkpk/runs", "dpo", json={"as_of": NIGHT})

    assert refused.status_code == 403
    assert api.ok("GET", "/v1/libraries/svkpk/runs", "dpo") == []
    assert api.reader("SV-LAPSED")["state"] == "active"
    assert api.call("POST", "/v1/libraries/svkpk/runs", "director", json={"as_of": NIGHT}).status_code == 403


def test_a_scheduler_cannot_start_a_real_run_past_the_librarys_tomorrow_and_nobody_is_anonymised(api: Api) -> None:
    api.load([CURRENT, LAPSED])
    after_tomorrow = (today() + timedelta(days=2)).isoformat()

    far = api.call("POST", "/v1/libraries/svkpk/runs", "scheduler", json={"as_of": "8999-01-01", "full": True})
    near = api.call("POST", "/v1/libraries/svkpk/runs", "scheduler", json={"as_of": after_tomorrow})

    assert (far.status_code, near.status_code) == (422, 422), (far.text, near.text)
    assert "dry run" in far.json()["detail"]
    assert "8999" not in far.text  # the value sent is not echoed
    assert api.ok("GET", "/v1/libraries/svkpk/runs", "scheduler") == []
    assert api.reader("SV-CURRENT")["state"] == "active"
    assert api.log(kind="decision") == []


def test_a_dry_run_may_look_ahead_to_any_day_and_a_real_run_tomorrow_is_allowed(api: Api) -> None:
    api.load([CURRENT])

    dry = api.ok("POST", "/v1/libraries/svkpk/runs", "dpo", json={"as_of": "8999-01-01", "dry_run": True})
    tomorrow = api.night((today() + timedelta(days=1)).isoformat())

    assert api.ok("GET", f"/v1/libraries/svkpk/runs/{dry['id']}", "dpo")["status"] == "finished"
    assert tomorrow["status"] == "finished"


def test_a_runs_summary_in_the_log_names_the_user_and_role_that_started_it(api: Api) -> None:
    api.load([LAPSED])

    run = api.night(NIGHT)

    (summary,) = api.log(kind="run_summary")
    started_by = {"type": "user", "id": api.user_id("scheduler"), "role": "scheduler"}
    assert summary["details"]["started_by"] == started_by
    assert run["summary"]["started_by"] == started_by


def test_a_run_started_over_http_that_fails_is_marked_failed_with_the_error_type_and_the_next_run_starts(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    api.load([LAPSED])
    secret = "SV-LAPSED Jana Nováková"

    def broken(*args: Any, **kwargs: Any) -> int:
        raise RuntimeError(secret)  # a message that may hold personal data

    monkeypatch.setattr("kodex.retention.run._Job.count_due", broken)
    started = api.ok("POST", "/v1/libraries/svkpk/runs", "scheduler", json={"as_of": NIGHT})
    failed = api.ok("GET", f"/v1/libraries/svkpk/runs/{started['id']}", "scheduler")

    assert failed["status"] == "failed"
    assert failed["summary"]["error"] == "RuntimeError"
    assert secret not in json.dumps(failed)
    (logged,) = api.log(kind="run_summary")
    assert (logged["outcome"], logged["details"]["error"]) == ("failed", "RuntimeError")
    assert secret not in json.dumps(logged)
    assert api.reader("SV-LAPSED")["state"] == "active"

    monkeypatch.undo()
    again = api.night(NIGHT)  # not 409: the lock was released and the failed run is not "running"

    assert summary_counts(again)[("anonymise", "applied")] == 1


def test_a_run_left_running_by_a_killed_process_does_not_refuse_later_http_runs(api: Api) -> None:
    api.load([LAPSED])
    with api.work.engine.begin() as connection:  # what a process killed mid-run leaves: a row, but no lock
        connection.execute(
            runs.insert().values(
                id="00000000-0000-0000-0000-00000000dead", library="svkpk", as_of=NIGHT, as_of_day=date(2026, 11, 22),
                dry_run=False, full=False, policy_revision=api.ruleset.revision, status="running",
                started_at=datetime(2026, 11, 22, 1, 0),
            )
        )  # fmt: skip

    run = api.night(NIGHT)

    assert summary_counts(run)[("anonymise", "applied")] == 1
    dead = api.ok("GET", "/v1/libraries/svkpk/runs/00000000-0000-0000-0000-00000000dead", "scheduler")
    assert dead["status"] == "interrupted"


# -- policy --------------------------------------------------------------------------------------------------------

POLICY_TEXT = POLICY.read_text(encoding="utf-8")
SHORTER = POLICY_TEXT.replace("value: 24 months", "value: 12 months")


def test_the_active_policy_gives_its_revision_and_validates(api: Api) -> None:
    active = api.ok("GET", "/v1/policy", "auditor")
    assert active["revision"] == api.ruleset.revision
    assert {lib["id"] for lib in active["libraries"]} == {"zdirec", "kntb", "svkpk"}

    checked = api.ok("POST", "/v1/policy/validation", "dpo", content=POLICY_TEXT.encode(),
                     headers={"Content-Type": "application/yaml"})  # fmt: skip

    assert (checked["valid"], checked["revision"], checked["problems"]) == (True, api.ruleset.revision, [])
    assert checked["examples_failed"] == []


def test_a_broken_policy_is_invalid_with_line_and_column_problems(api: Api) -> None:
    broken = POLICY_TEXT.replace("    rules:\n", "    rules: [\n", 1)

    checked = api.ok("POST", "/v1/policy/validation", "operator", content=broken.encode(),
                     headers={"Content-Type": "application/yaml"})  # fmt: skip

    assert (checked["valid"], checked["revision"]) == (False, None)
    assert checked["problems"]
    for problem in checked["problems"]:
        assert isinstance(problem["line"], int) and problem["line"] > 0
        assert isinstance(problem["column"], int)
        assert problem["message"]


def test_the_diff_of_a_shorter_archive_period_lists_the_readers_whose_anonymisation_would_change(api: Api) -> None:
    api.load([
        person("svkpk", "SV-2025", valid_until="2025-06-30", debt=0, active_loans=0),  # 12 months passed, 24 not
        person("svkpk", "SV-2026", valid_until="2026-10-01", debt=0, active_loans=0),  # neither
        person("svkpk", "SV-DEBT", valid_until="2025-06-30", debt=50, active_loans=0),  # owes: neither
    ])  # fmt: skip
    yaml = {"Content-Type": "application/yaml"}

    diff = api.ok("POST", "/v1/libraries/svkpk/policy/diff", "dpo", params={"as_of": NIGHT},
                  content=SHORTER.encode(), headers=yaml)  # fmt: skip
    same = api.ok("POST", "/v1/libraries/svkpk/policy/diff", "dpo", params={"as_of": NIGHT},
                  content=POLICY_TEXT.encode(), headers=yaml)  # fmt: skip

    assert (diff["subjects"], diff["changed_subjects"]) == (3, 1)
    assert diff["active_revision"] == api.ruleset.revision != diff["candidate_revision"]
    assert [(c["subject"], c["rule"], c["before"], c["after"], c["action_after"]) for c in diff["changes"]] == [
        ("SV-2025", "svkpk.retention.after_settlement", "not_applicable", "fires", "anonymise")
    ]
    assert diff["counts"] == [
        {"rule": "svkpk.retention.after_settlement", "before": "not_applicable", "after": "fires", "subjects": 1}
    ]
    assert (same["changed_subjects"], same["changes"], same["counts"]) == (0, [], [])
    assert api.call("POST", "/v1/libraries/svkpk/policy/diff", "director", content=SHORTER.encode(),
                    headers=yaml).status_code == 403  # fmt: skip


# -- explain -------------------------------------------------------------------------------------------------------


def test_explain_over_http_gives_the_same_lines_as_kodex_explain_from_the_store(api: Api) -> None:
    api.load([OWING, incident("svkpk", "I-9", "SV-OWING", "expelled_from_premises", "2026-03-01")])

    explained = api.ok("GET", "/v1/libraries/svkpk/readers/SV-OWING/explanation", "dpo", params={"as_of": NIGHT})
    result = CliRunner().invoke(cli, ["explain", "--reader", "SV-OWING", "--library", "svkpk", "--as-of", NIGHT])

    assert result.exit_code == 0, result.output
    # an item of `lines` is one rule's explanation, which may run over several printed lines
    assert "\n".join(explained["lines"]).splitlines() == result.stdout.splitlines()
    assert explained["lines"][0].startswith("SV-OWING (svkpk)")
    assert (explained["reader"], explained["as_of"], explained["policy_revision"]) == (
        "SV-OWING", NIGHT, api.ruleset.revision
    )  # fmt: skip
    assert api.call("GET", "/v1/libraries/svkpk/readers/SV-NOBODY/explanation", "dpo").status_code == 404
