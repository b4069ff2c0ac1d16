"""Where the active policy comes from: `--policy`, then KODEX_POLICY, then the config file's `policy`, then the
bundled policies.yaml. KODEX_POLICY and the config file come resolved as one value, `Settings.policy` (kodex.config:
the environment wins over the file), so the order is written here once."""

from __future__ import annotations

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


def policy_path(explicit: Path | None = None, configured: Path | None = None) -> Path:
    """The policy file: the one given (`--policy`), else the configured one (`Settings.policy`), else the bundled."""
    if explicit is not None:
        return explicit
    return configured if configured is not None else bundled_path("policies.yaml")


def load_ruleset(explicit: Path | None = None, configured: Path | None = None) -> Ruleset:
    return Ruleset(load_policy(policy_path(explicit, configured)))
