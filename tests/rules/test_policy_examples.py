"""Every example written beside a rule in policies.yaml holds, and every rule is covered.

The examples are the legal test cases (OpenFisca/OPA style): each states a
situation and its outcome. Here each one is a pytest case of its own, so a
failure names the rule and the sentence.
"""

from __future__ import annotations

import pytest

from kodex.rules.examples import run_examples
from kodex.rules.loading import load_policy
from kodex.rules.ruleset import Ruleset
from tests.support import POLICY

_RULESET = Ruleset(load_policy(POLICY))
_COVERAGE = run_examples(_RULESET)
_RESULTS = [result for entry in _COVERAGE for result in entry.results]


@pytest.mark.parametrize("result", _RESULTS, ids=[f"{r.rule}: {r.name}" for r in _RESULTS])
def test_policy_example_gives_what_it_expects(result) -> None:  # type: ignore[no-untyped-def]
    assert result.got == result.expected


@pytest.mark.parametrize("entry", _COVERAGE, ids=[e.rule for e in _COVERAGE])
def test_every_rule_has_a_firing_and_a_non_firing_example_and_both_sides_of_its_deadline(entry) -> None:  # type: ignore[no-untyped-def]
    assert entry.gaps == []


def test_every_catalogue_rule_of_the_three_libraries_is_encoded() -> None:
    actions = {(lib.id, rule.action) for lib in _RULESET.policy.libraries for rule in lib.rules}
    catalogue = {
        "zdirec": {"registration_expired", "require_guardian", "erase_guardian_data", "anonymise",
                   "erase_loan_history", "block_services", "missing_mandatory_data", "flag_excess_data"},
        "kntb": {"registration_expired", "reject_registration", "anonymise", "block_services",
                 "missing_mandatory_data", "flag_excess_data"},
        "svkpk": {"registration_expired", "reject_registration", "require_guardian", "erase_guardian_data",
                  "anonymise", "purge", "block_services", "missing_mandatory_data", "flag_excess_data"},
    }  # fmt: skip
    for library, expected in catalogue.items():
        assert expected <= {action for lib, action in actions if lib == library}, library
