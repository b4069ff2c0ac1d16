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


@connectors_app.command("test")
def connectors_test(library: LibraryArg) -> None:
    """Check the library system's connection and kodex's permissions in it, changing nothing (exit 13 on a failure)."""
    from kodex.api.console import out, run_body  # noqa: PLC0415
    from kodex.config import load_settings  # noqa: PLC0415
    from kodex.errors import CheckFailed, ConfigError  # noqa: PLC0415
    from kodex.services.connectors import connector_for  # noqa: PLC0415

    def body() -> None:
        settings = load_settings()
        config = settings.connectors.get(library)
        if config is None:
            raise ConfigError(_HOW_TO_CONNECT.format(library=library, file=settings.config_file))
        connector = connector_for(config)
        try:
            checks = connector.check()
        finally:
            connector.close()
        for check in checks:
            out.print(f"{'✓' if check.ok else '✗'} {check.name}: {check.detail}", markup=False)
        failed = [check.name for check in checks if not check.ok]
        if failed or not checks:
            raise CheckFailed(f"{len(failed)} of {len(checks)} checks failed ({', '.join(failed)}); fix or grant "
                              f"what each says (README, \"Connecting the library system\")")  # fmt: skip
        out.print(f"{config.type} of library {library}: all {len(checks)} checks passed", markup=False)

    run_body(body)


_HOW_TO_CONNECT = """library {library!r} has no library system configured: write in {file}, for FOLIO
    [connectors.{library}]
    type = "folio"
    url = "https://okapi.example.cz"     # Okapi's address
    tenant = "your_tenant"
    username = "kodex"
    password = "..."
or for Koha
    [connectors.{library}]
    type = "koha"
    url = "https://koha.example.cz"
    client_id = "..."
    client_secret = "..."
(README, "Connecting the library system")"""
