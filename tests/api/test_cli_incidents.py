"""The kodex command line on incident records: proposals name their incidents and the role that decides them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support import kodex

AS_OF = "2026-11-22"


def reader(library: str, id_: str) -> dict[str, Any]:
    return {"type": "reader", "library": library, "id": id_, "kind": "person"}


def incident(library: str, id_: str, reader_id: str, kind: str, at: str) -> dict[str, Any]:
    return {"type": "incident", "library": library, "id": id_, "reader": reader_id, "kind": kind, "at": at}


RECORDS = [
    reader("kntb", "R-1"),
    incident("kntb", "I-1", "R-1", "item_lost", "2026-03-02"),
    incident("kntb", "I-2", "R-1", "item_damaged", "2026-06-10"),
    incident("kntb", "I-3", "R-1", "card_lost", "2026-04-01"),
    reader("kntb", "R-2"),
    incident("kntb", "I-4", "R-2", "item_lost", "2026-05-01"),
    incident("kntb", "I-5", "R-2", "item_lost", "2026-12-01"),  # after as_of: does not count yet
    reader("svkpk", "R-3"),
    incident("svkpk", "I-6", "R-3", "expelled_from_premises", "2026-01-15"),
    incident("svkpk", "I-7", "R-3", "expelled_from_premises", "2026-10-02"),
    incident("svkpk", "I-8", "R-1", "expelled_from_premises", "2026-10-02"),  # an svkpk reader R-1, not kntb's
]


@pytest.fixture
def records(tmp_path: Path) -> Path:
    path = tmp_path / "incidents.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in RECORDS), encoding="utf-8")
    return path


def proposals(stdout: str) -> dict[tuple[str, str], dict[str, Any]]:
    decisions = [json.loads(text) for text in stdout.splitlines()]
    return {(d["subject"], d["rule"]): d for d in decisions if "incidents" in d}


def test_evaluate_proposes_exclusion_naming_the_incidents_and_the_director(records: Path) -> None:
    result = kodex("evaluate", "--as-of", AS_OF, str(records))
    assert result.exit_code == 0, result.output
    found = proposals(result.stdout)
    decision = found[("R-1", "kntb.exclusion.repeated_loss_or_damage")]
    assert decision["action"] == "propose_exclusion"
    assert decision["effect"] == "propose"
    assert decision["cite"] == "6.1"
    assert decision["decided_by"] == "director"
    assert decision["incidents"] == [
        {"id": "I-1", "kind": "item_lost", "at": "2026-03-02"},
        {"id": "I-2", "kind": "item_damaged", "at": "2026-06-10"},
    ]
    assert decision["reasons"] == [
        {
            "condition": "at least 2 incidents of item_lost or item_damaged",
            "holds": True,
            "values": {"incidents": 2, "at_least": 2},
        }
    ]
    expelled = found[("R-3", "svkpk.exclusion.repeated_expulsion")]
    assert [i["id"] for i in expelled["incidents"]] == ["I-6", "I-7"]
    assert expelled["decided_by"] == "director"
    assert set(found) == {
        ("R-1", "kntb.exclusion.repeated_loss_or_damage"),
        ("R-3", "svkpk.exclusion.repeated_expulsion"),
    }


def test_evaluate_all_shows_a_reader_one_incident_short_as_retain_with_the_count(records: Path) -> None:
    result = kodex("evaluate", "--as-of", AS_OF, "--all", "--library", "kntb", str(records))
    assert result.exit_code == 0, result.output
    decision = proposals(result.stdout)[("R-2", "kntb.exclusion.repeated_loss_or_damage")]
    assert decision["action"] == "retain"
    assert decision["incidents"] == [{"id": "I-4", "kind": "item_lost", "at": "2026-05-01"}]
    assert decision["reasons"][0]["values"] == {"incidents": 1, "at_least": 2}


def test_evaluate_a_directors_exception_retains_and_names_the_blocked_proposal(tmp_path: Path) -> None:
    grant = {"type": "exception", "library": "svkpk", "id": "E-1", "subject": "R-3", "rule": "svkpk.exclusion.repeated_expulsion",
             "role": "director", "granted_by": "ředitel", "reason": "omluva přijata", "from": "2026-11-01", "until": "2027-01-31"}  # fmt: skip
    path = tmp_path / "excepted.jsonl"
    lines = [*RECORDS, grant]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in lines), encoding="utf-8")
    result = kodex("evaluate", "--as-of", AS_OF, str(path))
    assert result.exit_code == 0, result.output
    decision = proposals(result.stdout)[("R-3", "svkpk.exclusion.repeated_expulsion")]
    assert decision["action"] == "retain"
    assert decision["blocked_action"] == "propose_exclusion"
    assert decision["exception"]["id"] == "E-1"
    assert "omluva" not in result.stdout


def test_explain_lists_the_incidents_and_who_decides(records: Path) -> None:
    result = kodex("explain", "--as-of", AS_OF, "--reader", "R-1", "--library", "kntb", str(records))
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "R-1 (kntb) as of 22 Nov 2026" in text
    assert "at least 2 incidents of item_lost or item_damaged" in text
    assert "matching incidents: 2; needed: 2" in text
    assert "incident I-1: item_lost on 2 Mar 2026" in text
    assert "incident I-2: item_damaged on 10 Jun 2026" in text
    assert "a proposal: the director decides it (6.1)" in text
    assert "incident I-3: card_lost on 1 Apr 2026" in text  # counted, but one short, for repeated card loss
    assert "I-8" not in text  # the svkpk reader with the same id


def test_explain_a_reader_one_short_shows_no_proposal_and_not_the_incident_after_as_of(records: Path) -> None:
    result = kodex("explain", "--as-of", AS_OF, "--reader", "R-2", str(records))
    assert result.exit_code == 0, result.output
    assert "incident I-4: item_lost on 1 May 2026" in result.stdout
    assert "matching incidents: 1; needed: 2" in result.stdout
    assert "I-5" not in result.stdout
    assert "a proposal" not in result.stdout


def test_an_incident_of_an_unknown_kind_is_refused_naming_its_line(records: Path) -> None:
    wrong = incident("kntb", "I-9", "R-1", "late_return", "2026-03-02")
    records.write_text(records.read_text(encoding="utf-8") + json.dumps(wrong) + "\n", encoding="utf-8")
    result = kodex("evaluate", "--as-of", AS_OF, str(records))
    assert result.exit_code == 4
    assert result.stdout == ""
    assert f"line {len(RECORDS) + 1}: kind:" in result.stderr
    assert "late_return" not in result.stderr


def test_installed_kodex_decides_incident_rules_and_exits(records: Path) -> None:
    """A fresh process: the engine is set up on first use and leaves no thread that keeps the process alive."""
    executable = Path(sys.executable).parent / "kodex"
    completed = subprocess.run(
        [str(executable), "evaluate", "--as-of", AS_OF, str(records)],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    assert set(proposals(completed.stdout)) == {
        ("R-1", "kntb.exclusion.repeated_loss_or_damage"),
        ("R-3", "svkpk.exclusion.repeated_expulsion"),
    }
