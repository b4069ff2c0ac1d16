"""Who reaches personal data (issue 16): token issuance, Art. 15 reads and agreements are in the decision log.

Before: a library_admin could issue itself a dpo token and read every Art. 15 copy, and no one's reading was
recorded; replacing a library's agreement lost the old one. Now every issued and revoked token and every read
of an Art. 15 copy is a log entry naming who did it, api.auth.ISSUES says which roles a caller may issue, an
admin-issued dpo or director token is flagged for the operator, and agreements keep their history.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from kodex.api.cli import app as cli
from kodex.api.web import create_app
from kodex.rules.ruleset import Ruleset
from kodex.services.importing import import_records
from kodex.services.setup import Workspace
from kodex.services.users import User, add_user
from kodex.store.schema import decision_log, readers
from tests.support import ROOT

LIBRARY = "svkpk"
READER = "SV-0000077"
SAMPLE = ROOT / "samples" / "readers.jsonl"


class Desk:
    def __init__(self, client: TestClient, work: Workspace) -> None:
        self.client, self.work = client, work
        self.operator, self.operator_token = add_user(work.engine, work.master, None, "operator", "Desk")
        self.admin, self.admin_token = add_user(work.engine, work.master, LIBRARY, "library_admin", "Admin")

    def call(self, method: str, path: str, token: str, **kw: Any) -> Any:
        return self.client.request(method, path, headers={"Authorization": f"Bearer {token}"}, **kw)

    def entries(self, kind: str, library: str = LIBRARY) -> list[dict[str, Any]]:
        with self.work.engine.connect() as connection:
            texts = connection.execute(
                select(decision_log.c.entry)
                .where(decision_log.c.library == library, decision_log.c.kind == kind)
                .order_by(decision_log.c.idx)
            ).scalars()
            return [json.loads(text) for text in texts]


def actor(user: User) -> dict[str, Any]:
    return {"type": "user", "id": user.id, "role": user.role}


@pytest.fixture
def desk(workspace: Workspace, ruleset: Ruleset) -> Iterator[Desk]:
    lines = [line for line in SAMPLE.read_text(encoding="utf-8").splitlines(keepends=True) if READER in line]
    import_records(
        lambda: iter(lines), workspace.engine, ruleset, workspace.master, date(2026, 11, 22),
        recordings=workspace.settings.recordings,
    )  # fmt: skip
    with TestClient(create_app(workspace, ruleset)) as client:
        yield Desk(client, workspace)


@pytest.mark.parametrize("role", ["operator", "library_admin"])
def test_a_library_admin_cannot_issue_an_operator_or_another_admin_token(desk: Desk, role: str) -> None:
    answer = desk.call("POST", f"/v1/libraries/{LIBRARY}/users", desk.admin_token, json={"role": role, "name": "X"})
    assert answer.status_code == 403
    assert answer.json()["detail"].startswith(f"role library_admin may not issue or revoke {role} tokens")
    assert desk.entries("user_added")[-1]["details"]["user"] == desk.admin.id  # nothing issued after the admin


def test_a_library_admin_cannot_issue_a_token_in_another_library(desk: Desk) -> None:
    answer = desk.call("POST", "/v1/libraries/kntb/users", desk.admin_token, json={"role": "dpo", "name": "X"})
    assert answer.status_code == 403
    assert [e["details"]["role"] for e in desk.entries("user_added", "kntb")] == ["operator"]


def test_a_library_admin_cannot_revoke_the_token_of_an_admin(desk: Desk) -> None:
    other, _ = add_user(desk.work.engine, desk.work.master, LIBRARY, "library_admin", "Second admin")
    answer = desk.call("DELETE", f"/v1/libraries/{LIBRARY}/users/{other.id}", desk.admin_token)
    assert answer.status_code == 403
    assert desk.entries("user_revoked") == []


def test_an_issued_and_a_revoked_token_are_logged_with_who_did_it_and_no_name(desk: Desk) -> None:
    issued = desk.call("POST", f"/v1/libraries/{LIBRARY}/users", desk.admin_token,
                       json={"role": "auditor", "name": "Alžběta Revizorová"}).json()  # fmt: skip
    assert desk.call("DELETE", f"/v1/libraries/{LIBRARY}/users/{issued['id']}", desk.operator_token).status_code == 204

    added, revoked = desk.entries("user_added")[-1], desk.entries("user_revoked")[-1]
    assert (added["actor"], added["details"], added["outcome"]) == (
        actor(desk.admin), {"user": issued["id"], "role": "auditor"}, "added"
    )  # fmt: skip
    assert (revoked["actor"], revoked["details"]) == (actor(desk.operator), {"user": issued["id"], "role": "auditor"})
    assert "Revizorová" not in json.dumps(added, ensure_ascii=False)


def test_an_operator_token_is_logged_in_every_librarys_log(desk: Desk) -> None:
    assert [e["details"]["user"] for e in desk.entries("user_added", "kntb")] == [desk.operator.id]
    assert [e["actor"] for e in desk.entries("user_added", "zdirec")] == [{"type": "cli", "id": None, "role": None}]


def test_a_dpo_token_issued_by_the_admin_is_flagged_in_the_operators_listing(desk: Desk) -> None:
    issued = desk.call("POST", f"/v1/libraries/{LIBRARY}/users", desk.admin_token,
                       json={"role": "dpo", "name": "Admin Herself"}).json()  # fmt: skip
    by_operator, _ = add_user(desk.work.engine, desk.work.master, LIBRARY, "director", "Ředitel", actor(desk.operator))

    listed = {u["id"]: u for u in desk.call("GET", f"/v1/libraries/{LIBRARY}/users", desk.operator_token).json()}

    assert (listed[issued["id"]]["flagged"], listed[issued["id"]]["created_by"]) == (
        True, {"id": desk.admin.id, "role": "library_admin"}
    )  # fmt: skip
    assert listed[by_operator.id]["flagged"] is False
    assert listed[desk.admin.id]["created_by"] == {"id": None, "role": "cli"}


def test_the_cli_listing_flags_an_admin_issued_dpo_token_for_the_operator(desk: Desk) -> None:
    desk.call("POST", f"/v1/libraries/{LIBRARY}/users", desk.admin_token, json={"role": "dpo", "name": "Self"})
    result = CliRunner().invoke(cli, ["users", "list", "--library", LIBRARY])
    assert result.exit_code == 0, result.output
    assert "ADMIN-ISSUED DPO" in result.stdout
    assert "1 active dpo/director token(s) issued by the library's admin" in result.stdout


def pseudonym(desk: Desk) -> str:
    with desk.work.engine.connect() as connection:
        found = connection.execute(
            select(readers.c.pseudonym).where(readers.c.library == LIBRARY, readers.c.id == READER)
        ).scalar_one()
    return str(found)


def test_reading_an_access_copy_over_http_is_logged_with_who_and_the_readers_pseudonym(desk: Desk) -> None:
    dpo, token = add_user(desk.work.engine, desk.work.master, LIBRARY, "dpo", "Pověřenec")
    answer = desk.call("GET", f"/v1/libraries/{LIBRARY}/readers/{READER}/access-copy", token)
    assert answer.status_code == 200

    (read,) = desk.entries("access_copy_read")
    assert (read["actor"], read["subject_type"], read["subject"], read["outcome"]) == (
        actor(dpo), "reader", pseudonym(desk), "read"
    )  # fmt: skip
    assert READER not in json.dumps(read)


def test_kodex_export_is_logged_as_a_read_from_the_command_line(desk: Desk) -> None:
    result = CliRunner().invoke(cli, ["export", "--library", LIBRARY, "--reader", READER])
    assert result.exit_code == 0, result.output
    (read,) = desk.entries("access_copy_read")
    assert (read["actor"], read["subject"]) == ({"type": "cli", "id": None, "role": None}, pseudonym(desk))


def test_replacing_an_agreement_keeps_the_old_one_and_logs_each_newest_first(desk: Desk) -> None:
    put = {"signed_on": "2026-09-01", "reference": "DPA-2026-002"}
    assert desk.call("PUT", f"/v1/libraries/{LIBRARY}/agreement", desk.operator_token, json=put).status_code == 200
    assert desk.call("PUT", f"/v1/libraries/{LIBRARY}/agreement", desk.operator_token, json=put).status_code == 200

    history = desk.call("GET", f"/v1/libraries/{LIBRARY}/agreements", desk.admin_token).json()

    assert [(a["signed_on"], a["reference"], a["current"]) for a in history] == [
        ("2026-09-01", "DPA-2026-002", True), ("2026-01-05", "DPA-T-1", False)
    ]  # fmt: skip
    assert history[0]["recorded_by"] == {"id": desk.operator.id, "role": "operator"}
    logged = desk.entries("agreement_recorded")
    assert [e["details"] for e in logged] == [
        {"signed_on": "2026-01-05", "reference_sha256": hashlib.sha256(b"DPA-T-1").hexdigest()},
        {"signed_on": "2026-09-01", "reference_sha256": hashlib.sha256(b"DPA-2026-002").hexdigest()},
    ]  # the same agreement recorded again is not a change
    assert logged[-1]["actor"] == actor(desk.operator)


def test_kodex_libraries_agreements_lists_the_history_newest_first(desk: Desk) -> None:
    runner = CliRunner()
    replaced = runner.invoke(cli, ["libraries", "agreement", LIBRARY, "--signed", "2026-09-01", "--reference", "R-2"])
    assert replaced.exit_code == 0, replaced.output
    result = runner.invoke(cli, ["libraries", "agreements", LIBRARY])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if "2026-" in line and "│" in line]
    assert ["in force" in lines[0], "R-2" in lines[0], "replaced" in lines[1], "DPA-T-1" in lines[1]] == [True] * 4
