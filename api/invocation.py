"""What one `kodex …` command works with: settings, the policy, the store, and each library's today.

One `Invocation` is made per command line run and kept on click's root context; each piece is made on first use
(a command that needs no store opens none, and `kodex --help` loads nothing of kodex at all). The policy and the
library's today are resolved here alone, so every command answers from the same definitions:

- the policy: `--policy`, then `KODEX_POLICY`, then the config file's `policy`, then the bundled policies.yaml
  (services.policy_source.policy_path; KODEX_POLICY and the file come through kodex.config.Settings.policy);
- now and today: the machine's clock in the library's own time zone (kodex.clock).
"""

from __future__ import annotations

from datetime import date, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:  # the heavy modules load when a command first asks for them, not when the CLI starts
    from kodex.config import Settings
    from kodex.rules.ruleset import Ruleset
    from kodex.services.setup import Workspace

__all__ = ["Invocation", "invocation"]


class Invocation:
    """This command's settings, policy, store and clock, each made on first use and then kept."""

    def __init__(self, policy: Path | None = None) -> None:
        self.given_policy = policy  # --policy, when the command takes it and it was given

    @cached_property
    def settings(self) -> Settings:
        from kodex.config import load_settings  # noqa: PLC0415

        return load_settings()

    @cached_property
    def policy_file(self) -> Path:
        from kodex.services.policy_source import policy_path  # noqa: PLC0415

        configured = None if self.given_policy is not None else self.settings.policy  # the config read only if needed
        return policy_path(self.given_policy, configured)

    @cached_property
    def ruleset(self) -> Ruleset:
        from kodex.services.policy_source import load_ruleset  # noqa: PLC0415

        return load_ruleset(self.policy_file)

    @cached_property
    def workspace(self) -> Workspace:
        """The store and the master key, checked before anything is touched (StoreNotReady, MasterKeyError)."""
        from kodex.services.setup import open_workspace  # noqa: PLC0415

        return open_workspace(self.settings)

    def library(self, library: str) -> str:
        """The library id given, if the policy has it (else wrong usage, exit 2, listing the ones it has)."""
        if library not in self.ruleset.libraries:
            raise typer.BadParameter(
                f"unknown library; the policy has: {', '.join(self.ruleset.libraries)}", param_hint="--library"
            )
        return library

    def now(self, library: str) -> datetime:
        """The current moment in the library's time zone."""
        from kodex.clock import library_now  # noqa: PLC0415

        return library_now(self.ruleset, library)

    def today(self, library: str) -> date:
        """Today in the library's time zone: the day a request is received or an exception starts, by default."""
        from kodex.clock import library_today  # noqa: PLC0415

        return library_today(self.ruleset, library)


def invocation(ctx: typer.Context, policy: Path | None = None) -> Invocation:
    """The running command's Invocation: made by its first call (with the command's --policy), then the same one.

    It is kept on the root of the command's context, which lives as long as this one `kodex …` run."""
    root = ctx.find_root()
    if not isinstance(root.obj, Invocation):
        root.obj = Invocation(policy)
    return root.obj
