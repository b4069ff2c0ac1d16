"""The kodex command line: exit codes, output contracts and what it refuses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import POLICY, SAMPLE, SHARED, kodex


def line(**fields: object) -> str:
    return json.dumps(
        {"type": "reader", "library": "svkpk", "id": "R-1", "kind": "person", **fields}, ensure_ascii=False
    )


COMPLETE = {"first_name": "Jana", "last_name": "Malá", "address": "Plzeň", "id_document": "OP 1"}
EXPIRED = line(valid_until="2024-11-21", debt=0, active_loans=0, birth_date="1990-01-01", personal=COMPLETE)


@pytest.mark.skipif(
    not (SHARED / "seeds").is_dir(),
    reason="the regulations (../shared/seeds) are not beside this clone: the quotes cannot be checked verbatim here",
)
def test_policy_check_passes_on_the_bundled_policy_with_verbatim_quotes() -> None:
    result = kodex("policy", "check", str(POLICY), "--seeds", str(SHARED / "seeds"))
    assert result.exit_code == 0, result.output
    assert "3 libraries" in result.output


def test_policy_check_reports_file_line_column_and_exits_3(tmp_path: Path) -> None:
    broken = tmp_path / "policy.yaml"
    text = POLICY.read_text(encoding="utf-8").replace("action: purge", "action: shred", 1)
    broken.write_text(text, encoding="utf-8")
    expected_line = text.splitlines().index("        action: shred") + 1
    result = kodex("policy", "check", str(broken))
    assert result.exit_code == 3
    assert f"{broken}:{expected_line}:9: " in result.output
    assert "unknown action 'shred'" in result.output


def test_policy_test_passes_and_prints_coverage_per_rule() -> None:
    result = kodex("policy", "test", str(POLICY))
    assert result.exit_code == 0, result.output
    assert "svkpk.retention.after_settlement" in result.output
    assert "all pass" in result.output


def test_policy_test_fails_on_an_example_with_the_wrong_expectation(tmp_path: Path) -> None:
    text = POLICY.read_text(encoding="utf-8")
    wrong = text.replace(
        "reader: {valid_until: 2024-11-21, debt: 0, active_loans: 0}\n            expect: anonymise",
        "reader: {valid_until: 2024-11-21, debt: 0, active_loans: 0}\n            expect: nothing",
    )
    assert wrong != text
    (tmp_path / "p.yaml").write_text(wrong, encoding="utf-8")
    result = kodex("policy", "test", str(tmp_path / "p.yaml"))
    assert result.exit_code == 5
    assert "expected nothing, got anonymise" in result.output


def test_policy_test_fails_when_a_rule_lacks_a_non_firing_example(tmp_path: Path) -> None:
    text = POLICY.read_text(encoding="utf-8")
    start = text.index("          - name: a reader owing nothing is not blocked")
    end = text.index("      - id: zdirec.inventory.mandatory_data")
    (tmp_path / "p.yaml").write_text(text[:start] + text[end:], encoding="utf-8")
    result = kodex("policy", "test", str(tmp_path / "p.yaml"))
    assert result.exit_code == 5
    assert "no example where it does not fire" in result.output


def test_evaluate_prints_one_json_decision_per_line() -> None:
    result = kodex("evaluate", "--as-of", "2026-11-22", "-", stdin=EXPIRED + "\n")
    assert result.exit_code == 0, result.output
    decisions = [json.loads(text) for text in result.stdout.splitlines()]
    assert [(d["rule"], d["action"]) for d in decisions] == [
        ("svkpk.registration.one_year", "registration_expired"),
        ("svkpk.retention.after_settlement", "anonymise"),
    ]


def test_evaluate_all_includes_retain_with_reasons() -> None:
    result = kodex("evaluate", "--as-of", "2026-11-22", "--all", "-", stdin=EXPIRED + "\n")
    decisions = [json.loads(text) for text in result.stdout.splitlines()]
    retained = [d for d in decisions if d["action"] == "retain"]
    assert retained and all(d["reasons"] for d in retained)


def test_evaluate_refuses_a_file_with_an_invalid_line_and_prints_nothing() -> None:
    stdin = EXPIRED + "\n" + line(id="R-2", debt="ten") + "\n"
    result = kodex("evaluate", "--as-of", "2026-11-22", "-", stdin=stdin)
    assert result.exit_code == 4
    assert result.stdout == ""
    assert "line 2: debt:" in result.stderr


def test_evaluate_skip_invalid_reports_each_skipped_line_and_decides_the_rest() -> None:
    stdin = line(id="R-0", bogus=1) + "\n" + EXPIRED + "\n" + line(id="R-2", birth_date="2030-01-01") + "\n"
    result = kodex("evaluate", "--as-of", "2026-11-22", "--skip-invalid", "-", stdin=stdin)
    assert result.exit_code == 0
    assert "skipped line 1: bogus: unknown field" in result.stderr
    assert "skipped line 3: birth_date: birth date is after as_of" in result.stderr
    assert {json.loads(t)["subject"] for t in result.stdout.splitlines()} == {"R-1"}


def test_evaluate_library_filter_keeps_one_library() -> None:
    result = kodex("evaluate", "--as-of", "2026-11-22", "--library", "kntb", str(SAMPLE))
    libraries = {json.loads(text)["library"] for text in result.stdout.splitlines()}
    assert libraries == {"kntb"}


def test_evaluate_table_format_lists_decisions() -> None:
    result = kodex("evaluate", "--as-of", "2026-11-22", "--format", "table", "-", stdin=EXPIRED + "\n")
    assert result.exit_code == 0
    assert "svkpk.retention.after_settlement" in result.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["evaluate", "--as-of", "22.11.2026", "-"],
        ["evaluate", "--as-of", "2026-11-22", "--format", "xml", "-"],
        ["evaluate", "--as-of", "2026-11-22", "--library", "nowhere", "-"],
        ["evaluate", "--as-of", "2026-11-22", "/no/such/file.jsonl"],
        ["evaluate", "-"],
    ],
    ids=["as-of-not-iso", "unknown-format", "unknown-library", "missing-file", "as-of-missing"],
)
def test_wrong_usage_exits_2(args: list[str]) -> None:
    assert kodex(*args, stdin="").exit_code == 2


def test_explain_says_why_in_plain_words() -> None:
    stdin = line(
        valid_until="2023-01-01", obligations_settled_at="2025-06-01", debt=0, active_loans=0, birth_date="1981-03-02"
    )
    result = kodex("explain", "--as-of", "2026-11-22", "--reader", "R-1", "-", stdin=stdin + "\n")
    assert result.exit_code == 0, result.output
    assert "R-1 (svkpk) as of 22 Nov 2026" in result.stdout
    assert "NOT YET (due after 1 Jun 2027)" in result.stdout
    assert "archive_period = 24 months (čl. 10 odst. 7)" in result.stdout
    assert "age in completed years: 45" in result.stdout


def test_explain_unknown_reader_exits_6() -> None:
    result = kodex("explain", "--as-of", "2026-11-22", "--reader", "R-404", "-", stdin=EXPIRED + "\n")
    assert result.exit_code == 6
    assert "R-404" not in result.stderr


def test_exception_from_a_role_the_regulation_does_not_empower_names_its_line() -> None:
    grant = {"type": "exception", "library": "zdirec", "id": "E-1", "subject": "R-1", "rule": "zdirec.suspension.unsettled_debt",
             "role": "authorised_employee", "granted_by": "X", "reason": "Y", "from": "2026-01-01", "until": "2026-12-31"}  # fmt: skip
    stdin = line(library="zdirec", debt=10) + "\n" + json.dumps(grant) + "\n"
    result = kodex("evaluate", "--as-of", "2026-11-22", "-", stdin=stdin)
    assert result.exit_code == 4
    assert "line 2: role: role may not grant exceptions" in result.stderr


def test_installed_kodex_command_reads_standard_input() -> None:
    executable = Path(sys.executable).parent / "kodex"
    completed = subprocess.run(
        [str(executable), "evaluate", "--as-of", "2026-11-22", "-"],
        input=EXPIRED + "\n", capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    assert len(completed.stdout.splitlines()) == 2


@pytest.mark.parametrize("command", ["evaluate", "run"])
def test_an_as_of_moment_without_offset_is_refused_with_exit_2_saying_to_add_it(
    command: str, kodex_env: dict[str, str]
) -> None:
    args = [command, "--as-of", "2026-11-22T02:00:00"] + ([str(SAMPLE)] if command == "evaluate" else [])
    result = kodex(*args)
    assert result.exit_code == 2, result.output
    assert "needs its UTC offset" in result.output
    assert "or give a day" in result.output
