"""kodex checks what it guarantees with real checks, which `python -O` does not strip: no `assert` in the package.

A guarantee of kodex's own raises BrokenInvariant (kodex.errors) when it breaks; what a user can write wrongly
(a policy's condition, an example's subject) is reported as a problem of the policy.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from kodex.errors import BrokenInvariant, InvalidPolicy
from kodex.rules.loading import parse_policy
from kodex.rules.ruleset import Ruleset

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ("rules", "retention", "services", "api", "audit", "store", "kodex")
# store/migrations is being rewritten separately (issue 17); its two asserts go with that rewrite
NOT_YET = ("store/migrations",)
POLICY = (ROOT / "policies.yaml").read_text(encoding="utf-8")


def package_files() -> list[Path]:
    files = []
    for folder in PACKAGE:
        for path in sorted((ROOT / folder).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if not relative.startswith(NOT_YET) and not path.is_symlink() and path.parent.resolve() == path.parent:
                files.append(path)
    return files


def asserts_in(source: str) -> list[int]:
    return [node.lineno for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Assert)]


def test_the_package_has_no_assert_statements() -> None:
    files = package_files()
    assert len(files) > 50  # the walk does find the package
    found = {str(path.relative_to(ROOT)): lines for path in files if (lines := asserts_in(path.read_text("utf-8")))}
    assert found == {}


def test_control_an_assert_statement_is_found() -> None:
    assert asserts_in("def f(x):\n    if x:\n        assert x is not None, 'x'\n") == [3]


def test_an_applied_action_without_a_strategy_stops_the_import_of_the_strategies() -> None:
    script = (
        "from kodex.rules import actions\n"
        "actions.ACTIONS = {**actions.ACTIONS, 'shred': actions._action('shred', 'reader', 'apply', True, 'x')}\n"
        "try:\n"
        "    import kodex.retention.strategies\n"
        "except Exception as error:\n"
        "    print(type(error).__name__, error)\n"
    )
    completed = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    assert completed.stdout.strip() == "BrokenInvariant every applied action has a strategy; without: ['shred']"


def test_asking_a_rule_on_facts_for_its_incident_pattern_is_a_broken_invariant(ruleset: Ruleset) -> None:
    on_facts = next(r for lib in ruleset.libraries.values() for r in lib.rules if r.pattern is None)
    with pytest.raises(BrokenInvariant, match=f"rule {on_facts.id} is a rule on facts"):
        _ = on_facts.incident_pattern


@pytest.mark.parametrize("condition", ["debt > __period__(debt)", "debt > __period__()"], ids=["a-name", "nothing"])
def test_a_period_written_by_hand_as_a_call_is_a_problem_of_the_policy(condition: str) -> None:
    text = POLICY.replace("          - debt > 0\n", f"          - {condition}\n", 1)
    with pytest.raises(InvalidPolicy, match="write a period as the law does"):
        parse_policy(text, "policies.yaml")


def test_an_example_whose_subject_is_not_a_reader_or_a_recording_is_a_problem_of_the_policy() -> None:
    example = "            reader: {debt: 30}\n"
    assert POLICY.count(example) == 1
    text = POLICY.replace(
        example, "            reader: {type: incident, reader: R-1, kind: card_lost, at: 2026-01-01}\n"
    )
    with pytest.raises(InvalidPolicy, match="expected tags: 'reader', 'camera_recording'"):
        parse_policy(text, "policies.yaml")
