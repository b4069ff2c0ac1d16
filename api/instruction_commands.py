"""Commands for the instruction feed: instructions to the library system, its webhook, its connector.

Thin wrappers over services.instructions, services.delivery and services.connectors — the same functions the
HTTP service calls (api/routes). Built only when one of them is called (api.deferred): this module imports the store.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from kodex.api.console import err, out, run_body
from kodex.api.invocation import invocation

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


@instructions_app.command(
    "deliver",
    epilog=(
        "kodex serve does this every few seconds for every library with a webhook or a connector; this command is "
        "for cron (with kodex serve --no-scheduler) and for tests. An instruction that fails is tried again later "
        "(after ~5 s, then minutes, then hours, ~3 days in all, or later when the endpoint's Retry-After asks); "
        "after the last attempt it stays pending for the pull and is counted undeliverable. A 410 Gone answer "
        "disables the webhook: set it again with kodex webhooks set."
    ),
)
def instructions_deliver(
    ctx: typer.Context,
    library: LibraryArg,
    wait: Annotated[
        float,
        typer.Option("--wait", min=0, help="Seconds to wait if another process (kodex serve) is delivering them."),
    ] = 0.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as one JSON object.")] = False,
) -> None:
    """Deliver the library's due instructions once: its connector carries out what it can, the webhook gets the rest.

    Prints what happened: delivered (the webhook answered 2xx), carried out / rejected / failed (by the connector),
    retried (tried again later), gave up, undeliverable (all pending ones given up on), and whether a 410 Gone
    disabled the endpoint. Nothing is sent for a library with neither a webhook nor a connector.
    """

    def body() -> None:
        from kodex.services.delivery import deliver_due  # noqa: PLC0415

        command = invocation(ctx)
        command.library(library)
        summary = deliver_due(command.workspace, command.ruleset, library, wait=wait)
        if as_json:
            sys.stdout.write(json.dumps(summary.as_json()) + "\n")
            return
        figures = summary.as_json()
        errors = figures.pop("errors")
        disabled = figures.pop("disabled")
        out.print(", ".join(f"{name.replace('_', ' ')} {n}" for name, n in figures.items() if name != "library"),
                  markup=False)  # fmt: skip
        if errors:
            out.print("failures: " + ", ".join(f"{why} ×{n}" for why, n in errors.items()), markup=False)
        if disabled:
            out.print("the webhook answered 410 Gone and is disabled; set it again: kodex webhooks set", markup=False)

    run_body(body)


@webhooks_app.command(
    "set",
    epilog=(
        "Each instruction is POSTed as JSON with the Standard Webhooks headers webhook-id (the instruction's id, "
        "the same on every retry: use it to ignore a repeat), webhook-timestamp (unix seconds) and "
        "webhook-signature (v1,<base64 HMAC-SHA256 of id.timestamp.body under the secret's base64-decoded bytes>). "
        "Answer any 2xx when it is stored; 410 Gone disables the endpoint. Setting it again makes a new secret."
    ),
)
def webhooks_set(
    ctx: typer.Context,
    library: LibraryArg,
    url: Annotated[
        str, typer.Option("--url", help="Where to POST instructions, e.g. https://ils.example.org/kodex/instructions.")
    ],
) -> None:
    """Push the library's instructions to URL; print its new signing secret (whsec_…) once: kodex keeps it wrapped.

    Replaces any earlier endpoint and secret. The secret is printed alone on stdout (to pipe into the receiver's
    configuration); how to verify a delivery with it goes to stderr.
    """

    def body() -> None:
        from kodex.services.delivery import set_webhook  # noqa: PLC0415

        command = invocation(ctx)
        command.library(library)
        work = command.workspace
        secret = set_webhook(work.engine, work.master, library, url)
        sys.stdout.write(secret + "\n")
        err.print(
            f"{library}: instructions are pushed to the URL given, signed with the secret above (shown this once).\n"
            "Verify each delivery: base64-decode the secret without its whsec_ prefix; compute HMAC-SHA256 of\n"
            "  webhook-id + '.' + webhook-timestamp + '.' + the raw body\n"
            "base64-encode it and compare with the webhook-signature header (after 'v1,'); refuse a timestamp more\n"
            "than 5 minutes off. Or: standardwebhooks.Webhook(secret).verify(body, headers) (pip install "
            "standardwebhooks).",
            markup=False,
        )

    run_body(body)


# -- connectors ------------------------------------------------------------------------------------------------
