"""Where the active policy comes from: `--policy`, then KODEX_POLICY, then the bundled policies.yaml."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from kodex.rules.loading import load_policy
from kodex.rules.ruleset import Ruleset

__all__ = ["bundled_path", "load_ruleset", "policy_path"]


def bundled_path(name: str) -> Path:
    """A file shipped with kodex: beside the packages in a checkout, inside the `kodex` package in a wheel."""
    checkout = Path(__file__).resolve().parent.parent / name
    if checkout.exists():
        return checkout
    return Path(str(resources.files("kodex") / name))


def policy_path(explicit: Path | None = None) -> Path:
    if explicit is not None:
        return explicit
    configured = os.environ.get("KODEX_POLICY")
    return Path(configured) if configured else bundled_path("policies.yaml")


def load_ruleset(explicit: Path | None = None) -> Ruleset:
    return Ruleset(load_policy(policy_path(explicit)))
