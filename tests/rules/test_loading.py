"""Strict loading of policies.yaml: every problem names the file, the line and the key.

Each case takes the real policy text, breaks one thing in it, and checks that the
problem is reported on the line of the offending key in the broken text.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest

from kodex.errors import InvalidPolicy
from kodex.rules.loading import PolicyProblem, load_policy, parse_policy
from kodex.rules.periods import Period
from kodex.rules.quotes import check_quotes
from kodex.rules.ruleset import Ruleset

POLICY_PATH = Path(__file__).resolve().parents[2] / "policies.yaml"
SEEDS_DIR = Path(__file__).resolve().parents[3] / "shared" / "seeds"
BASE = POLICY_PATH.read_text(encoding="utf-8")
FILE = "policies.yaml"

REGISTRATION = "zdirec.registration.calendar_year"
SUSPENSION = "zdirec.suspension.unsettled_debt"
RETENTION = "zdirec.retention.five_years_after_registration"
ARCHIVE = "svkpk.retention.after_settlement"


# ---------------------------------------------------------------- helpers


def rule_block(text: str, rule_id: str) -> str:
    """The YAML of one rule, from its `- id:` line to the line before the next rule or library."""
    match = re.search(rf"^      - id: {re.escape(rule_id)}\n.*?(?=^      - id: |^  - id: |^  # |\Z)", text, re.S | re.M)
    assert match, f"no rule {rule_id} in the policy"
    return match.group(0)


def edit_rule(rule_id: str, old: str, new: str, text: str = BASE) -> str:
    """Replace the first `old` inside one rule's YAML."""
    block = rule_block(text, rule_id)
    assert old in block, f"{old!r} not in rule {rule_id}"
    return text.replace(block, block.replace(old, new, 1), 1)


def replace_once(old: str, new: str, text: str = BASE) -> str:
    assert old in text, f"{old!r} not in the policy"
    return text.replace(old, new, 1)


def line_of(text: str, line: str, nth: int = 1, after: str | None = None) -> int:
    """1-based number of the `nth` line of `text` reading exactly `line` (below the line `after`, if given)."""
    start = line_of(text, after) if after else 0
    numbers = [n for n, each in enumerate(text.splitlines(), start=1) if each == line and n > start]
    assert len(numbers) >= nth, f"{line!r} occurs {len(numbers)} times"
    return numbers[nth - 1]


def problems_of(text: str) -> list[PolicyProblem]:
    with pytest.raises(InvalidPolicy) as raised:
        parse_policy(text, FILE)
    return raised.value.problems


def assert_problem_at(
    text: str, line: str, token: str, *words: str, nth: int = 1, rule: str | None = None
) -> PolicyProblem:
    """A problem on the `nth` line reading `line` (in `rule`, if given), at the column of `token`, naming every word."""
    problems = problems_of(text)
    after = f"      - id: {rule}" if rule else None
    expected = (line_of(text, line, nth, after), line.index(token) + 1)
    found = [p for p in problems if (p.line, p.column) == expected and all(w in p.message for w in words)]
    listing = "\n".join(str(p) for p in problems)
    assert found, f"expected a problem at {expected} naming {words}; got:\n{listing}"
    assert found[0].file == FILE
    return found[0]


# Only the quote checks read the regulations, which lie beside a clone (../shared/seeds), not in it.
needs_seeds = pytest.mark.skipif(
    not SEEDS_DIR.is_dir(),
    reason="the regulations (../shared/seeds) are not beside this clone: quotes cannot be checked verbatim here",
)


def seeds() -> dict[str, str]:
    return {path.name: path.read_text(encoding="utf-8") for path in sorted(SEEDS_DIR.glob("*.txt"))}


# ---------------------------------------------------------------- the real policy


def test_the_real_policy_loads_without_problems():
    loaded = load_policy(POLICY_PATH)
    assert [library.id for library in loaded.policy.libraries] == ["zdirec", "kntb", "svkpk"]
    assert loaded.file == str(POLICY_PATH)


# ---------------------------------------------------------------- structure


@pytest.mark.parametrize("key", [pytest.param("colour", id="lowercase"), pytest.param("Cite", id="capitalised")])
def test_unknown_key_in_a_rule_is_rejected_at_its_line(key: str):
    inserted = f"        {key}: red"
    text = edit_rule(REGISTRATION, "        cite: čl. 3 odst. 6\n", f"        cite: čl. 3 odst. 6\n{inserted}\n")
    problem = assert_problem_at(text, inserted, key, key, "unknown key")
    assert problem.message == f"libraries.0.rules.0.{key}: unknown key"


def test_duplicate_key_in_a_mapping_is_an_error_at_the_second_occurrence():
    duplicate = "        title: A second title"
    text = edit_rule(
        REGISTRATION,
        "        cite: čl. 3 odst. 6\n",
        f"{duplicate}\n        cite: čl. 3 odst. 6\n",
    )
    assert_problem_at(text, duplicate, "title", "duplicate key", '"title"')


def test_duplicate_date_of_a_parameter_value_is_an_error():
    duplicate = "        2018-07-01: {value: 16, cite: GDPR poučení (rozsah zpracování)}"
    text = replace_once(
        "        2018-07-01: {value: 15, cite: GDPR poučení (rozsah zpracování)}\n",
        f"        2018-07-01: {{value: 15, cite: GDPR poučení (rozsah zpracování)}}\n{duplicate}\n",
    )
    assert_problem_at(text, duplicate, "2018-07-01", "duplicate key", "2018-07-01")


def test_rule_without_cite_is_rejected_at_the_rule():
    text = edit_rule(REGISTRATION, "        cite: čl. 3 odst. 6\n", "")
    problem = assert_problem_at(text, f"      - id: {REGISTRATION}", "id", "cite", "required key is missing")
    assert problem.message == "libraries.0.rules.0.cite: required key is missing"


def test_rule_with_an_empty_quote_is_rejected():
    text = edit_rule(
        REGISTRATION,
        "        quote:\n          - Registrace se obnovuje každý kalendářní rok.\n",
        "        quote: []\n",
    )
    assert_problem_at(text, "        quote: []", "quote", "libraries.0.rules.0.quote", "at least 1 item")


def test_rule_with_no_examples_is_rejected():
    block = rule_block(BASE, SUSPENSION)
    examples = block[block.index("        examples:\n") :].rstrip("\n") + "\n"
    text = edit_rule(SUSPENSION, examples, "        examples: []\n")
    assert_problem_at(text, "        examples: []", "examples", "libraries.0.rules.6.examples", "at least 1 item")


def test_unknown_time_zone_is_rejected():
    text = replace_once("    time_zone: Europe/Prague\n", "    time_zone: Europe/Zdirec\n")
    assert_problem_at(text, "    time_zone: Europe/Zdirec", "time_zone", "libraries.0.time_zone", "unknown time zone")


def test_yaml_that_does_not_parse_is_reported_at_its_line():
    broken = "        title: Registration: renewed each calendar year"
    text = edit_rule(
        REGISTRATION, "        title: Registration is renewed each calendar year and lapses after 31 December", broken
    )
    problems = problems_of(text)
    assert [(p.file, p.line, p.column) for p in problems] == [
        (FILE, line_of(text, broken), broken.index(": renewed") + 1)
    ]
    assert "mapping values are not allowed" in problems[0].message


# ---------------------------------------------------------------- parameters and conditions


def test_period_parameter_written_24_monts_is_rejected():
    line = "            2024-07-01: {value: 24 monts, cite: čl. 10 odst. 7}"
    text = edit_rule(ARCHIVE, "{value: 24 months,", "{value: 24 monts,")
    assert_problem_at(
        text, line, "value", "params.archive_period.2024-07-01.value", "'24 monts' is not a period", rule=ARCHIVE
    )


def test_condition_naming_an_unknown_fact_is_rejected():
    line = "          - age_in_days > 3"
    text = edit_rule(SUSPENSION, "          - debt > 0", line)
    assert_problem_at(
        text, line, "age_in_days", "libraries.0.rules.6.when.0", "unknown fact", "'age_in_days'", rule=SUSPENSION
    )


@pytest.mark.parametrize(
    ("condition", "words"),
    [
        pytest.param("reader.debt > 0", ("Attribute is not allowed",), id="attribute access"),
        pytest.param('"lambda: debt > 0"', ("Lambda is not allowed",), id="lambda"),
        pytest.param("__import__('os')", ("unknown function", "'__import__'"), id="call of an unknown function"),
        pytest.param("debt[0] > 0", ("Subscript is not allowed",), id="subscript"),
    ],
)
def test_condition_with_syntax_outside_the_policy_language_is_rejected(condition: str, words: tuple[str, ...]):
    line = f"          - {condition}"
    text = edit_rule(SUSPENSION, "          - debt > 0", line)
    assert_problem_at(text, line, condition, "libraries.0.rules.6.when.0", *words, rule=SUSPENSION)


# ---------------------------------------------------------------- actions, effects, authority


def test_unknown_action_is_rejected():
    line = "        action: shred"
    text = edit_rule(SUSPENSION, "        action: block_services", line)
    assert_problem_at(text, line, "action", "libraries.0.rules.6.action", "unknown action 'shred'", rule=SUSPENSION)


def test_effect_the_action_does_not_allow_is_rejected():
    line = "        effect: report"
    text = edit_rule(RETENTION, "        effect: apply", line)
    problem = assert_problem_at(text, line, "effect", "libraries.0.rules.3.effect", "'anonymise'", rule=RETENTION)
    assert problem.message.endswith("may only be: apply")


def test_example_expecting_another_action_is_rejected():
    line = "            expect: anonymise"
    text = edit_rule(SUSPENSION, "            expect: block_services", line)
    problem = assert_problem_at(text, line, "expect", "libraries.0.rules.6.examples.0.expect", rule=SUSPENSION)
    assert "'block_services', 'nothing' or 'retain'" in problem.message


@pytest.mark.parametrize("expect", ["nothing", "retain"])
def test_example_may_expect_nothing_or_retain(expect: str):
    text = edit_rule(SUSPENSION, "            expect: block_services", f"            expect: {expect}")
    assert parse_policy(text, FILE).policy.libraries[0].rules[6].examples[0].expect == expect


def test_exception_by_a_role_zdirec_does_not_empower_is_rejected():
    line = "        exception_by: [director, authorised_employee]"
    text = edit_rule(SUSPENSION, "        exception_by: [director]", line)
    assert_problem_at(
        text,
        line,
        "exception_by",
        "libraries.0.rules.6.exception_by",
        "'authorised_employee'",
        "not empowered",
        rule=SUSPENSION,
    )


def test_exception_by_both_roles_is_accepted_where_the_regulation_empowers_both():
    text = edit_rule(
        "svkpk.block.reminded_ill_loans",
        "exception_by: [director, authorised_employee]",
        "exception_by: [authorised_employee, director]",
    )
    rule = next(
        r for r in parse_policy(text, FILE).policy.libraries[2].rules if r.id == "svkpk.block.reminded_ill_loans"
    )
    assert rule.exception_by == ["authorised_employee", "director"]


def test_a_camera_recording_rule_that_allows_exceptions_is_rejected_a_legal_hold_keeps_a_recording():
    camera = "svkpk.camera.purge_after_7_days"
    line = "        exception_by: [director]"
    text = edit_rule(camera, rule_block(BASE, camera).split("exception_by: ")[1].splitlines()[0], "[director]")
    assert_problem_at(text, line, "exception_by", "exception_by", "legal hold", "write []", rule=camera)


# ---------------------------------------------------------------- categories and the longest exception


def test_a_library_without_its_categories_is_rejected():
    block = "    categories:  # 4.2 names two: hospital staff (internal) and everyone else (external)\n"
    start = BASE.index(block)
    end = BASE.index("    inventory:", start)
    problems = problems_of(BASE[:start] + BASE[end:])
    assert any("libraries.1.categories" in p.message and "missing" in p.message.lower() for p in problems)


@needs_seeds
def test_a_category_quote_that_is_not_verbatim_is_reported_at_its_line():
    line = "        - Interní uživatelé (všichni),"
    text = replace_once("        - Interní uživatelé (zaměstnanci nemocnice),", line)
    problems = check_quotes(parse_policy(text, FILE), seeds())
    assert [(p.line, p.message.split(":")[0]) for p in problems] == [
        (line_of(text, line), "libraries.1.categories.quote.1")
    ]


def test_the_longest_exception_must_be_a_period():
    old = '        2018-05-25: {value: 1 year, cite: "GDPR čl. 5 odst. 1 písm. e); KŘ 7 sets no longest period"}'
    line = old.replace("1 year", "1 yaer")
    problems = problems_of(replace_once(old, line))
    assert [p.message for p in problems if p.line == line_of(replace_once(old, line), line)] == [
        "libraries.1.exceptions.max_period.2018-05-25.value: '1 yaer' is not a period; "
        "write e.g. '24 months', '1 year' or '7 days'"
    ]


def test_each_library_has_a_longest_exception_of_a_year_and_kntb_the_categories_its_regulation_names():
    policy = load_policy(POLICY_PATH).policy
    assert {lib.id: [v.value for v in lib.exceptions.max_period.values()] for lib in policy.libraries} == {
        "zdirec": ["1 year"], "kntb": ["1 year"], "svkpk": ["1 year"]
    }  # fmt: skip
    assert {lib.id: lib.categories.values for lib in policy.libraries} == {
        "zdirec": ["adult", "child", "senior", "student"], "kntb": ["internal", "external"],
        "svkpk": ["adult", "child", "senior", "student"],
    }  # fmt: skip


# ---------------------------------------------------------------- rule ids and versions


def test_rule_id_not_prefixed_by_its_library_id_is_rejected():
    line = "      - id: kntb.suspension.unsettled_debt"
    text = replace_once(f"      - id: {SUSPENSION}\n", f"{line}\n")
    assert_problem_at(text, line, "id", "libraries.0.rules.6.id", "'zdirec.'")


def test_duplicate_rule_id_with_overlapping_effective_period_is_rejected():
    block = rule_block(BASE, SUSPENSION)
    text = replace_once(block, block + block)
    problem = assert_problem_at(text, f"      - id: {SUSPENSION}", "id", "libraries.0.rules.7.id", nth=2)
    assert f"duplicate rule id '{SUSPENSION}'" in problem.message


def two_suspension_versions(first_ends: str) -> str:
    """The policy with zdirec's suspension rule in two versions: the first ends on `first_ends`, the second starts 2026-01-01."""
    block = rule_block(BASE, SUSPENSION)
    start = "        effective_from: 2021-01-04\n"
    old = block.replace(start, f"{start}        effective_to: {first_ends}\n")
    new = block.replace(start, "        effective_from: 2026-01-01\n")
    return replace_once(block, old + new)


def test_same_rule_id_with_a_later_non_overlapping_period_is_a_new_version():
    text = two_suspension_versions(first_ends="2025-12-31")
    zdirec = Ruleset(parse_policy(text, FILE)).library("zdirec")
    versions = zdirec.versions(SUSPENSION)
    assert [(v.rule.effective_from, v.rule.effective_to) for v in versions] == [
        (date(2021, 1, 4), date(2025, 12, 31)),
        (date(2026, 1, 1), None),
    ]
    in_force = {
        day: [r.rule.effective_from for r in zdirec.at(day).rules["reader"] if r.id == SUSPENSION]
        for day in (date(2025, 12, 31), date(2026, 1, 1))
    }
    assert in_force == {date(2025, 12, 31): [date(2021, 1, 4)], date(2026, 1, 1): [date(2026, 1, 1)]}


def test_versions_touching_on_the_same_day_overlap():
    text = two_suspension_versions(first_ends="2026-01-01")
    assert_problem_at(text, f"      - id: {SUSPENSION}", "id", "overlaps another version", nth=2)


# ---------------------------------------------------------------- revision and dated values


def test_policy_revision_is_a_sha256_hex_digest():
    assert re.fullmatch(r"[0-9a-f]{64}", load_policy(POLICY_PATH).revision)


def test_policy_revision_ignores_comments_and_layout():
    relaid = (
        "# a comment added at the top\n\n"
        + BASE.replace("kodex: 1\n", "kodex: 1    # the language version\n\n\n", 1).replace(
            "{value: 24 months, cite: čl. 10 odst. 7}", "{ value: 24 months,   cite: čl. 10 odst. 7 }", 1
        )
        + "\n\n# and one at the end\n"
    )
    assert relaid != BASE
    assert parse_policy(relaid).revision == parse_policy(BASE).revision


def test_policy_revision_changes_when_a_parameter_value_changes():
    changed = edit_rule(ARCHIVE, "{value: 24 months,", "{value: 36 months,")
    assert parse_policy(changed).revision != parse_policy(BASE).revision


def test_as_of_selects_the_dated_parameter_value_in_force():
    text = edit_rule(
        ARCHIVE,
        "            2024-07-01: {value: 24 months, cite: čl. 10 odst. 7}\n",
        "            2024-07-01: {value: 24 months, cite: čl. 10 odst. 7}\n"
        "            2027-01-01: {value: 36 months, cite: an amendment of čl. 10 odst. 7}\n",
    )
    svkpk = Ruleset(parse_policy(text, FILE)).library("svkpk")
    assert "archive_period" not in svkpk.at(date(2024, 6, 30)).params
    assert svkpk.at(date(2024, 7, 1)).params["archive_period"] == Period(months=24)
    assert svkpk.at(date(2026, 12, 31)).params["archive_period"] == Period(months=24)
    assert svkpk.at(date(2027, 1, 1)).params["archive_period"] == Period(months=36)
    assert svkpk.at(date(2027, 1, 1)).param_cites["archive_period"] == "an amendment of čl. 10 odst. 7"


# ---------------------------------------------------------------- files


def test_load_policy_names_the_file_in_every_problem(tmp_path: Path):
    path = tmp_path / "broken.yaml"
    path.write_text(replace_once("    time_zone: Europe/Prague\n", "    time_zone: Europe/Zdirec\n"), encoding="utf-8")
    with pytest.raises(InvalidPolicy) as raised:
        load_policy(path)
    assert [(p.file, p.line) for p in raised.value.problems] == [(str(path), 16)]
    assert str(raised.value).startswith(f"{path}:16:5: libraries.0.time_zone")


def test_missing_policy_file_is_an_invalid_policy(tmp_path: Path):
    path = tmp_path / "absent.yaml"
    with pytest.raises(InvalidPolicy) as raised:
        load_policy(path)
    assert [(p.file, p.line) for p in raised.value.problems] == [(str(path), 0)]
    assert "cannot read policy" in raised.value.problems[0].message


# ---------------------------------------------------------------- quotes


@needs_seeds
def test_every_quote_in_the_policy_is_verbatim_in_its_seed():
    texts = seeds()
    assert {"001_ac55c6cd9530d6ec.txt", "002_464dcc4eaa908697.txt", "004_3dd208706764d184.txt"} <= set(texts)
    assert check_quotes(load_policy(POLICY_PATH), texts) == []


@needs_seeds
def test_a_modified_quote_is_reported_at_its_line():
    line = "          - Registrace se obnovuje každé dva roky."
    text = edit_rule(REGISTRATION, "          - Registrace se obnovuje každý kalendářní rok.", line)
    problems = check_quotes(parse_policy(text, FILE), seeds())
    assert [(p.file, p.line, p.column) for p in problems] == [(FILE, line_of(text, line), line.index("Registrace") + 1)]
    assert problems[0].message.startswith("libraries.0.rules.0.quote.0: not verbatim in 001_ac55c6cd9530d6ec.txt")


def test_a_quote_whose_seed_is_missing_is_reported():
    problems = check_quotes(load_policy(POLICY_PATH), {})
    assert [p.message for p in problems] == [f"libraries.{i}.regulation.seed: no such seed text" for i in range(3)]
