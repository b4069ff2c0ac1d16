"""The kodex command line: exit codes, output contracts and what it refuses."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import typer

from kodex.api.cli import app
from kodex.api.deferred import DEFERRED, real_command
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


# -- one invocation: the policy and the library's today, resolved once for every command --------------------------


def _configured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, config: str) -> None:
    """An installation home in tmp_path whose kodex.toml says `config`; no KODEX_POLICY."""
    (tmp_path / "kodex.toml").write_text(config, encoding="utf-8")
    monkeypatch.setenv("KODEX_HOME", str(tmp_path))
    monkeypatch.delenv("KODEX_CONFIG", raising=False)
    monkeypatch.delenv("KODEX_POLICY", raising=False)


def _broken_policy(tmp_path: Path) -> Path:
    broken = tmp_path / "broken.yaml"
    broken.write_text("libraries: [\n", encoding="utf-8")
    return broken


@pytest.mark.parametrize("command", ["evaluate", "explain"])
def test_evaluate_and_explain_file_honour_the_config_policy(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = _broken_policy(tmp_path)
    _configured(tmp_path, monkeypatch, f'policy = "{broken}"\n')
    args = [command, "--as-of", "2026-11-22", *(["--reader", "R-1"] if command == "explain" else []), "-"]
    result = kodex(*args, stdin=EXPIRED + "\n")
    assert result.exit_code == 3, result.output
    assert str(broken) in result.stderr


def test_evaluate_honours_the_config_policy_below_policy_and_kodex_policy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _configured(tmp_path, monkeypatch, f'policy = "{_broken_policy(tmp_path)}"\n')
    given = kodex("evaluate", "--as-of", "2026-11-22", "--policy", str(POLICY), "-", stdin=EXPIRED + "\n")
    assert given.exit_code == 0, given.output
    monkeypatch.setenv("KODEX_POLICY", str(POLICY))
    from_environment = kodex("evaluate", "--as-of", "2026-11-22", "-", stdin=EXPIRED + "\n")
    assert from_environment.exit_code == 0, from_environment.output
    assert from_environment.stdout == given.stdout


def test_explain_file_counts_today_in_the_librarys_time_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    # 23:30 UTC on 21 Nov 2026 is already 22 Nov in Plzeň: the card expired 21 Nov 2024, 24 months have passed there
    monkeypatch.setattr("kodex.clock.now", lambda: datetime(2026, 11, 21, 23, 30, tzinfo=UTC))
    result = kodex("explain", "--reader", "R-1", "-", stdin=EXPIRED + "\n")
    assert result.exit_code == 0, result.output
    assert "R-1 (svkpk) as of 22 Nov 2026 00:30:00 +0100" in result.stdout
    same = kodex("explain", "--reader", "R-1", "--as-of", "2026-11-22T00:30:00+01:00", "-", stdin=EXPIRED + "\n")
    assert result.stdout == same.stdout
    day_before = kodex("explain", "--reader", "R-1", "--as-of", "2026-11-21", "-", stdin=EXPIRED + "\n")
    assert day_before.stdout.split("\n", 1)[1] != result.stdout.split("\n", 1)[1]  # the day decides the outcome


# -- start-up: what `kodex --help` does not load -----------------------------------------------------------------


def test_kodex_help_imports_no_store_web_cryptography_or_rule_engine() -> None:
    probe = (
        "import sys; from typer.testing import CliRunner; from kodex.api.cli import app; "
        "result = CliRunner().invoke(app, ['--help']); assert result.exit_code == 0, result.output; "
        "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'sqlalchemy', 'fastapi', 'uvicorn', 'cryptography', 'durable', 'alembic', 'pydantic'})))"
    )
    completed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60)
    assert completed.stdout.split() == []


@pytest.mark.parametrize("path", sorted(DEFERRED))
def test_a_deferred_command_is_listed_with_what_the_real_command_says(path: str) -> None:
    *group, name = path.split()
    listed = typer.main.get_command(app)
    for word in group:
        listed = listed.commands[word]  # type: ignore[attr-defined]
    stand_in = listed.commands[name]  # type: ignore[attr-defined]
    real = real_command(path)
    assert stand_in.help == (real.help or "").split("\n\n")[0].strip()
    assert getattr(real, "commands", None) or real.params  # the real one: its subcommands or its options
