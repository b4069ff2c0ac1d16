"""The service commands of the kodex command line: libraries, users, requests, holds, exceptions, proposals,
`policy diff` and `explain` from the store; each with its exit code (api/cli.py: 0 ok, 2 wrong usage or a request
refused, 3 policy, 4 invalid records, 6 not found, 10 no authority, 11 no data-processing agreement).

Every test has an installation of its own on the engine CI chose (`kodex_env`), set up as an operator would:
`kodex init`, then `kodex libraries agreement`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import Result

from kodex.api.web import create_app
from kodex.audit.log import LogFilter, query
from kodex.config import load_settings
from kodex.rules.ruleset import Ruleset
from kodex.services.inquiry import reader_status
from kodex.services.proposals import list_proposals
from kodex.services.setup import Workspace, open_workspace
from kodex.services.users import list_users
from kodex.store.schema import runs
from tests.retention.support import CURRENT, EXPELLED, LAPSED, OWING, person, recording
from tests.support import AGREEMENT, POLICY, kodex, ok

NIGHT, NEXT_NIGHT = "2026-11-22", "2026-11-23"
RULE = "svkpk.retention.after_settlement"


def records_file(tmp_path: Path, records: Iterable[Mapping[str, Any]], name: str = "records.jsonl") -> str:
    path = tmp_path / name
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return str(path)


@pytest.fixture
def installed(kodex_env: dict[str, str]) -> dict[str, str]:
    """`kodex init` and every library's agreement recorded."""
    ok("init")
    ok(*AGREEMENT)
    return kodex_env


@pytest.fixture
def workspace(installed: dict[str, str]) -> Iterator[Workspace]:
    """The installation (`kodex init` and the agreements, from the command line), to look at what the commands did."""
    work = open_workspace(load_settings())
    yield work
    work.engine.dispose()


def night(as_of: str = NIGHT) -> Result:
    return ok("run", "--library", "svkpk", "--as-of", as_of, "--wait", "60")


# -- libraries -------------------------------------------------------------------------------------------------------


def test_import_exits_11_for_a_library_without_an_agreement_until_kodex_libraries_agreement_records_it(
    kodex_env: dict[str, str], tmp_path: Path
) -> None:
    ok("init")
    svkpk = records_file(tmp_path, [CURRENT], "svkpk.jsonl")

    refused = kodex("import", svkpk)

    assert refused.exit_code == 11, refused.output
    assert "no data-processing agreement" in refused.stderr

    recorded = kodex("libraries", "agreement", "svkpk", "--signed", "2026-01-05", "--reference", "DPA-2026/17")

    assert recorded.exit_code == 0, recorded.output
    assert recorded.stdout.strip() == "svkpk: agreement DPA-2026/17 of 2026-01-05 recorded"
    ok("import", svkpk)
    # kntb still has none
    assert kodex("import", records_file(tmp_path, [person("kntb", "KN-1")], "kntb.jsonl")).exit_code == 11


def test_kodex_libraries_agreement_refuses_a_library_not_in_the_policy_and_a_malformed_day(
    kodex_env: dict[str, str],
) -> None:
    ok("init")

    not_in_policy = kodex("libraries", "agreement", "nowhere", "--signed", "2026-01-05", "--reference", "DPA-1")
    bad_day = kodex("libraries", "agreement", "svkpk", "--signed", "5.1.2026", "--reference", "DPA-1")

    assert (not_in_policy.exit_code, bad_day.exit_code) == (3, 2)
    listed = ok("libraries", "list").stdout
    assert "none: takes no personal data" in listed


# -- users -------------------------------------------------------------------------------------------------------


def test_users_add_prints_only_the_token_and_that_token_works_against_the_api(
    installed: dict[str, str], ruleset: Ruleset, workspace: Workspace
) -> None:
    added = kodex("users", "add", "--library", "svkpk", "--role", "dpo", "--name", "Eva Pověřená")

    assert added.exit_code == 0, added.output
    (token,) = added.stdout.splitlines()
    assert token.startswith("kodex_") and " " not in token
    client = TestClient(create_app(workspace, ruleset))
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/v1/libraries/svkpk/requests", headers=headers).status_code == 200
    assert client.get("/v1/libraries/kntb/requests", headers=headers).status_code == 403  # its own library only

    (user,) = list_users(workspace.engine, workspace.master, "svkpk")
    ok("users", "revoke", user.id, "--library", "svkpk")
    assert client.get("/v1/libraries/svkpk/requests", headers=headers).status_code == 401


def test_an_operator_is_added_without_a_library_and_every_other_role_needs_one(
    installed: dict[str, str], ruleset: Ruleset, workspace: Workspace
) -> None:
    operator = ok("users", "add", "--role", "operator", "--name", "ZÍSKEJ desk").stdout.strip()

    headers = {"Authorization": f"Bearer {operator}"}
    listed = TestClient(create_app(workspace, ruleset)).get("/v1/libraries", headers=headers)
    assert listed.status_code == 200
    assert [u.library for u in list_users(workspace.engine, workspace.master, None)] == [None]
    assert kodex("users", "add", "--role", "operator", "--name", "X", "--library", "svkpk").exit_code == 2
    assert kodex("users", "add", "--role", "dpo", "--name", "X").exit_code == 2
    assert kodex("users", "add", "--role", "janitor", "--name", "X", "--library", "svkpk").exit_code == 2
    assert list_users(workspace.engine, workspace.master, "svkpk") == []


# -- data-subject requests ---------------------------------------------------------------------------------------


def test_kodex_requests_add_says_when_it_is_due_and_what_the_rules_decide(
    installed: dict[str, str], tmp_path: Path
) -> None:
    ok("import", records_file(tmp_path, [CURRENT, OWING]))

    free = ok("requests", "add", "--library", "svkpk", "--reader", "SV-CURRENT", "--kind", "erasure",
              "--received", "2026-01-31").stdout  # fmt: skip
    owing = ok("requests", "add", "--library", "svkpk", "--reader", "SV-OWING", "--kind", "erasure",
               "--received", "2026-03-15").stdout  # fmt: skip

    assert "received 2026-01-31, due 2026-02-28" in free
    assert "svkpk.erasure.cancellation_on_request (čl. 8 odst. 8; čl. 9 odst. 2): anonymise" in free
    assert "the next nightly run carries it out" in free
    assert "due 2026-04-15" in owing and "not now" in owing
    history = ok("requests", "add", "--library", "svkpk", "--reader", "SV-CURRENT", "--kind", "loan_history_erasure")
    assert "no rule of this library's policy acts on this kind of request" in history.stdout  # none in S-2/2024
    unknown = kodex("requests", "add", "--library", "svkpk", "--reader", "SV-NOBODY", "--kind", "erasure")
    wrong_kind = kodex("requests", "add", "--library", "svkpk", "--reader", "SV-CURRENT", "--kind", "forget_me")
    assert (unknown.exit_code, wrong_kind.exit_code) == (6, 2)


def test_kodex_requests_due_lists_overdue_and_due_within_the_days_but_not_later(
    installed: dict[str, str], tmp_path: Path
) -> None:
    ok("import", records_file(tmp_path, [CURRENT, OWING]))
    ok(
        "requests",
        "add",
        "--library",
        "svkpk",
        "--reader",
        "SV-CURRENT",
        "--kind",
        "erasure",
        "--received",
        "2026-01-31",
    )
    ok("requests", "add", "--library", "svkpk", "--reader", "SV-OWING", "--kind", "erasure", "--received", "2026-02-20")

    due = ok("requests", "due", "--library", "svkpk", "--today", "2026-03-01", "--within", "7").stdout

    # due 28 Feb (overdue on 1 Mar) is listed; due 20 Mar is not
    assert "SV-CURRENT" in due and "OVERDUE" in due
    assert "SV-OWING" not in due
    later = ok("requests", "due", "--library", "svkpk", "--today", "2026-03-14", "--within", "7").stdout
    assert "SV-OWING" in later
    assert kodex("requests", "due", "--library", "svkpk", "--today", "1.3.2026").exit_code == 2


# -- legal holds ------------------------------------------------------------------------------------------------------


def test_kodex_holds_set_keeps_a_reader_and_release_lets_the_next_run_anonymise(
    installed: dict[str, str], workspace: Workspace, tmp_path: Path
) -> None:
    ok("import", records_file(tmp_path, [LAPSED]))

    held = ok("holds", "set", "--library", "svkpk", "--subject", "SV-LAPSED", "--reason", "handed to the police")

    assert held.stdout.strip() == "legal hold set on reader SV-LAPSED until released"
    night()
    assert reader_status(workspace.engine, "svkpk", "SV-LAPSED").state != "anonymised"
    released = ok("holds", "release", "--library", "svkpk", "--subject", "SV-LAPSED")
    assert released.stdout.strip() == "legal hold on SV-LAPSED released"
    assert kodex("holds", "release", "--library", "svkpk", "--subject", "SV-LAPSED").exit_code == 6
    night(NEXT_NIGHT)
    assert reader_status(workspace.engine, "svkpk", "SV-LAPSED").state == "anonymised"


def test_kodex_holds_set_on_a_recording_keeps_it_past_its_7_days(
    installed: dict[str, str], workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KODEX_RECORDINGS_ROOT", str(tmp_path / "cctv"))
    video = tmp_path / "cctv" / "svkpk" / "cam-1.mp4"
    video.parent.mkdir(parents=True)
    video.write_bytes(b"video")
    ok("import", records_file(tmp_path, [recording("cam-1", "2026-11-10T11:00:00+01:00", video)]))

    ok("holds", "set", "--library", "svkpk", "--subject", "cam-1", "--recording", "--reason", "theft",
       "--until", "2027-01-31")  # fmt: skip
    night()

    assert video.exists()
    assert (
        kodex("holds", "set", "--library", "svkpk", "--subject", "cam-2", "--recording", "--reason", "x").exit_code == 6
    )


# -- exceptions ----------------------------------------------------------------------------------------------------


def grant(*extra: str, rule: str = RULE) -> Result:
    return kodex(
        "exceptions", "grant", "--library", "svkpk", "--subject", "SV-LAPSED", "--rule", rule,
        "--reason", "estate settled by the notary", "--from", "2026-11-01", "--until", "2027-03-31",
        "--granted-by", "Mgr. Ivana Ředitelová", *extra,
    )  # fmt: skip


def test_kodex_exceptions_grant_stores_and_lists_it_and_it_holds_the_rule_back(
    installed: dict[str, str], workspace: Workspace, tmp_path: Path
) -> None:
    ok("import", records_file(tmp_path, [LAPSED]))

    granted = grant("--id", "E-1")

    assert granted.exit_code == 0, granted.output
    assert granted.stdout.strip() == f"exception E-1 granted: {RULE} suspended for SV-LAPSED until 2027-03-31"
    (listed,) = [json.loads(line) for line in ok("exceptions", "list", "--library", "svkpk").stdout.splitlines()]
    assert (listed["id"], listed["subject"], listed["rule"], listed["role"]) == ("E-1", "SV-LAPSED", RULE, "director")
    assert (listed["granted_by"], listed["from"], listed["until"], listed["revoked_as_of"]) == (
        "Mgr. Ivana Ředitelová", "2026-11-01", "2027-03-31", None
    )  # fmt: skip
    night()
    assert reader_status(workspace.engine, "svkpk", "SV-LAPSED").state != "anonymised"

    revoked = ok("exceptions", "revoke", "E-1", "--library", "svkpk", "--as-of", NIGHT)
    assert revoked.stdout.startswith(f"exception E-1 revoked as of {NIGHT}; logged as entry ")
    night(NEXT_NIGHT)
    assert reader_status(workspace.engine, "svkpk", "SV-LAPSED").state == "anonymised"


def test_kodex_exceptions_grant_to_a_rule_that_allows_none_exits_4_and_stores_nothing(
    installed: dict[str, str], tmp_path: Path
) -> None:
    ok("import", records_file(tmp_path, [LAPSED]))

    refused = grant(rule="svkpk.erasure.cancellation_on_request")

    assert refused.exit_code == 4, refused.output
    assert "allows no exceptions" in refused.stderr
    assert ok("exceptions", "list", "--library", "svkpk").stdout == ""
    assert grant("--until", "2026-10-01").exit_code == 4  # ends before it starts


def test_kodex_exceptions_grant_by_a_role_without_authority_exits_10(installed: dict[str, str], tmp_path: Path) -> None:
    ok("import", records_file(tmp_path, [LAPSED]))

    refused = grant("--role", "librarian")

    assert refused.exit_code == 10, refused.output


def test_kodex_exceptions_revoke_by_a_role_without_authority_exits_10(
    installed: dict[str, str], tmp_path: Path
) -> None:
    ok("import", records_file(tmp_path, [LAPSED]))
    ok("exceptions", "grant", "--library", "svkpk", "--subject", "SV-LAPSED", "--rule", RULE, "--reason", "r",
       "--from", "2026-11-01", "--until", "2027-03-31", "--granted-by", "D", "--id", "E-1")  # fmt: skip

    assert kodex("exceptions", "revoke", "E-1", "--library", "svkpk", "--role", "librarian").exit_code == 10
    (listed,) = [json.loads(line) for line in ok("exceptions", "list", "--library", "svkpk").stdout.splitlines()]
    assert listed["revoked_as_of"] is None


def test_kodex_exceptions_grant_longer_than_the_librarys_maximum_exits_4_naming_the_limit(
    installed: dict[str, str], tmp_path: Path
) -> None:
    ok("import", records_file(tmp_path, [LAPSED]))

    refused = grant("--until", "2027-11-02")  # from 2026-11-01: a year and a day

    assert refused.exit_code == 4, refused.output
    assert "line 1: until: an exception lasts at most 1 year from its first day" in refused.stderr
    assert ok("exceptions", "list", "--library", "svkpk").stdout == ""
    assert grant("--until", "2027-11-01").exit_code == 0


def test_kodex_exceptions_revoke_backdated_before_the_grant_exits_2_and_keeps_it(
    installed: dict[str, str], tmp_path: Path
) -> None:
    ok("import", records_file(tmp_path, [LAPSED]))
    assert grant("--id", "E-1").exit_code == 0  # from 2026-11-01

    refused = kodex("exceptions", "revoke", "E-1", "--library", "svkpk", "--as-of", "2026-10-31")

    assert refused.exit_code == 2, refused.output
    assert "before the exception's first day (2026-11-01)" in refused.stderr
    (listed,) = [json.loads(line) for line in ok("exceptions", "list", "--library", "svkpk").stdout.splitlines()]
    assert listed["revoked_as_of"] is None


# -- proposals ----------------------------------------------------------------------------------------------------


def test_kodex_proposals_list_accept_and_reject_with_their_exit_codes(
    installed: dict[str, str], workspace: Workspace, tmp_path: Path
) -> None:
    ok("import", records_file(tmp_path, EXPELLED))
    night()

    listed = ok("proposals", "list", "--library", "svkpk").stdout

    assert "SV-EX1" in listed and "SV-EX2" in listed and "SV-ONCE" not in listed
    ids = {p.subject: p.id for p in list_proposals(workspace.engine, "svkpk")}
    accepted = ok("proposals", "accept", ids["SV-EX1"], "--library", "svkpk", "--reason", "expelled twice")
    assert accepted.stdout.strip() == f"proposal {ids['SV-EX1']} accepted; logged"
    assert kodex("proposals", "accept", ids["SV-EX1"], "--library", "svkpk", "--reason", "again").exit_code == 2
    dpo = kodex("proposals", "reject", ids["SV-EX2"], "--library", "svkpk", "--reason", "x", "--role", "dpo")
    assert dpo.exit_code == 10
    rejected = ok("proposals", "reject", ids["SV-EX2"], "--library", "svkpk", "--reason", "apologised")
    assert rejected.stdout.strip() == f"proposal {ids['SV-EX2']} rejected; logged"
    assert kodex("proposals", "accept", "nope", "--library", "svkpk", "--reason", "x").exit_code == 6

    assert reader_status(workspace.engine, "svkpk", "SV-EX1").services_blocked
    assert not reader_status(workspace.engine, "svkpk", "SV-EX2").services_blocked
    remaining = ok("proposals", "list", "--library", "svkpk").stdout
    assert "SV-EX1" not in remaining and "SV-EX2" not in remaining
    every = ok("proposals", "list", "--library", "svkpk", "--status", "all").stdout
    assert "accepted" in every and "rejected" in every


# -- a candidate policy ---------------------------------------------------------------------------------------------


def test_kodex_policy_diff_lists_the_readers_a_shorter_archive_period_would_anonymise(
    installed: dict[str, str], tmp_path: Path
) -> None:
    ok("import", records_file(tmp_path, [
        person("svkpk", "SV-2025", valid_until="2025-06-30", debt=0, active_loans=0),
        person("svkpk", "SV-2026", valid_until="2026-10-01", debt=0, active_loans=0),
        person("svkpk", "SV-DEBT", valid_until="2025-06-30", debt=50, active_loans=0),
    ]))  # fmt: skip
    text = POLICY.read_text(encoding="utf-8")
    shorter = tmp_path / "shorter.yaml"
    shorter.write_text(text.replace("value: 24 months", "value: 12 months"), encoding="utf-8")
    broken = tmp_path / "broken.yaml"
    broken.write_text(text.replace("    rules:\n", "    rules: [\n", 1), encoding="utf-8")

    changed = ok("policy", "diff", str(shorter), "--library", "svkpk", "--as-of", NIGHT).stdout
    same = ok("policy", "diff", str(POLICY), "--library", "svkpk", "--as-of", NIGHT).stdout

    assert f"svkpk as of {NIGHT}: 1 of 3 subjects would be decided differently" in changed
    assert f"reader SV-2025: {RULE} not_applicable → fires" in changed
    assert "SV-2026" not in changed and "SV-DEBT" not in changed
    assert f"svkpk as of {NIGHT}: 0 of 3 subjects would be decided differently" in same
    assert kodex("policy", "diff", str(broken), "--library", "svkpk", "--as-of", NIGHT).exit_code == 3


# -- explain from the store ----------------------------------------------------------------------------------------


def test_kodex_explain_without_a_file_explains_the_stored_reader(installed: dict[str, str], tmp_path: Path) -> None:
    path = records_file(tmp_path, [OWING])
    ok("import", path)

    stored = kodex("explain", "--reader", "SV-OWING", "--library", "svkpk", "--as-of", NIGHT)
    from_file = kodex("explain", "--reader", "SV-OWING", "--library", "svkpk", "--as-of", NIGHT, path)

    assert stored.exit_code == 0, stored.output
    assert stored.stdout.splitlines()[0].startswith("SV-OWING (svkpk) as of")
    assert stored.stdout == from_file.stdout
    assert kodex("explain", "--reader", "SV-OWING", "--as-of", NIGHT).exit_code == 2  # which library?
    assert kodex("explain", "--reader", "SV-NOBODY", "--library", "svkpk", "--as-of", NIGHT).exit_code == 6


# -- runs ------------------------------------------------------------------------------------------------------------


def test_kodex_run_past_tomorrow_exits_2_saying_to_use_dry_run_and_changes_nothing_in_any_library(
    workspace: Workspace, tmp_path: Path
) -> None:
    ok("import", records_file(tmp_path, [LAPSED, CURRENT]))

    refused = kodex("run", "--as-of", "8999-01-01", "--full")

    assert refused.exit_code == 2, refused.output
    assert "--dry-run" in refused.stderr
    assert reader_status(workspace.engine, "svkpk", "SV-LAPSED").state == "active"
    with workspace.engine.connect() as connection:
        assert connection.execute(select(runs.c.id)).all() == []
    looked_ahead = ok("run", "--as-of", "8999-01-01", "--dry-run")
    assert "anonymise" in looked_ahead.stdout
    assert reader_status(workspace.engine, "svkpk", "SV-LAPSED").state == "active"


def test_a_run_from_the_command_line_names_the_cli_as_its_starter_in_the_log(
    workspace: Workspace, tmp_path: Path
) -> None:
    ok("import", records_file(tmp_path, [LAPSED]))

    night()

    (summary,) = query(workspace.engine, LogFilter(library="svkpk", kind="run_summary"))
    assert summary[1]["details"]["started_by"] == {"type": "cli", "id": None, "role": None}
