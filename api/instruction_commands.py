"""Commands for the instruction feed: instructions to the library system, its webhook, its connector.

Thin wrappers over services.instructions, services.delivery and services.connectors — the same functions the
HTTP service calls (api/routes). Built only when one of them is called (api.deferred): this module imports the store.
"""

from __future__ import annotations

from typing import Annotated

import typer

__all__ = ["connectors_app", "instructions_app", "webhooks_app"]

instructions_app = typer.Typer(
    rich_markup_mode=None,
    help="Instructions to the library system: list them (CSV and a Czech work list too), record outcomes, deliver.",
    no_args_is_help=True,
)
webhooks_app = typer.Typer(
    rich_markup_mode=None, help="Where a library's instructions are pushed (Standard Webhooks).", no_args_is_help=True
)
connectors_app = typer.Typer(
    rich_markup_mode=None,
    help="Adapters that carry instructions out in Koha or FOLIO themselves ([connectors.<library>] in the config).",
    no_args_is_help=True,
)

LibraryArg = Annotated[str, typer.Option("--library", help="The library's id (e.g. svkpk).")]


# -- instructions: list, outcome -------------------------------------------------------------------------------


# -- instructions: deliver; webhooks ---------------------------------------------------------------------------


# -- connectors ------------------------------------------------------------------------------------------------
