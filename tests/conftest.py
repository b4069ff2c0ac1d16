"""Shared by every test package: the project's own policy, compiled once."""

from __future__ import annotations

from pathlib import Path

import pytest

from rules.loading import load_policy
from rules.ruleset import Ruleset

ROOT = Path(__file__).resolve().parents[1]
POLICY = ROOT / "policies.yaml"
SHARED = ROOT.parent / "shared"


@pytest.fixture(scope="session")
def ruleset() -> Ruleset:
    return Ruleset(load_policy(POLICY))
