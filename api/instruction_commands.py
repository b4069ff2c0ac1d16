"""Commands for the instruction feed: instructions to the library system, its webhook, its connector.

Thin wrappers over services.instructions, services.delivery and services.connectors — the same functions the
HTTP service calls (api/routes). Built only when one of them is called (api.deferred): this module imports the store.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any

import typer
from jinja2 import Environment, PackageLoader, select_autoescape
from rich.table import Table

from kodex.api.console import err, out, run_body
from kodex.api.invocation import invocation
from kodex.errors import Conflict, InvalidRequest, SubjectNotFound
from kodex.services.instructions import OUTCOMES, VIEWS, Instruction, list_instructions, record_outcomes

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

CSV_COLUMNS = (
    "sequence", "id", "action", "subject_type", "subject_id", "what", "due_on", "state", "overdue", "rule", "cite",
    "decision_id", "outcome", "code", "detail",
)  # fmt: skip
_FORMATS = ("table", "jsonl", "csv", "html")
_WORDS: dict[str, dict[str, Any]] = {
    "cs": {
        "title": "Pracovní seznam pro knihovní systém", "printed": "Vytištěno", "count": "Pokynů",
        "overdue": "Po termínu", "done": "Hotovo", "subject": "Čtenář / záznam", "what": "Co udělat",
        "due": "Do kdy", "why": "Proč (článek)", "instruction": "Pokyn", "late": "PO TERMÍNU",
        "reader": "čtenář", "camera_recording": "kamerový záznam",
        "nothing": "Žádné pokyny k provedení.",
        "how": "Proveďte každý řádek v knihovním systému u čtenáře či záznamu s uvedeným ID a odškrtněte ho. "
        "Provedené pokyny označte v kodexu: kodex instructions outcome ID --library KNIHOVNA --outcome done "
        "(nebo vyplňte sloupec outcome v CSV a nahrajte ho: kodex instructions outcome --library KNIHOVNA --csv SOUBOR).",
        "state": {
            "pending": "čeká", "delivered": "doručeno", "done": "hotovo", "failed": "selhalo",
            "rejected": "odmítnuto", "not_carried_out": "neprovedeno (data jsou zpět)",
        },
    },
    "en": {
        "title": "Work list for the library system", "printed": "Printed", "count": "Instructions",
        "overdue": "Overdue", "done": "Done", "subject": "Reader / record", "what": "What to do", "due": "By",
        "why": "Why (article)", "instruction": "Instruction", "late": "OVERDUE", "reader": "reader",
        "camera_recording": "camera recording", "nothing": "Nothing to carry out.",
        "how": "Carry each row out in the library system for the reader or record with the id shown, and tick it. "
        "Mark what you did in kodex: kodex instructions outcome ID --library LIBRARY --outcome done "
        "(or fill in the CSV's outcome column and load it: kodex instructions outcome --library LIBRARY --csv FILE).",
        "state": {
            "pending": "pending", "delivered": "delivered", "done": "done", "failed": "failed",
            "rejected": "rejected", "not_carried_out": "not carried out (the data came back)",
        },
    },
}  # fmt: skip


@instructions_app.command("list")
def instructions_list(
    ctx: typer.Context,
    library: LibraryArg,
    state: Annotated[
        str,
        typer.Option(
            "--state",
            help="pending, delivered, done, failed, rejected, not_carried_out, overdue (pending or delivered past "
            "their due day), or all.",
        ),
    ] = "all",
    output: Annotated[
        str,
        typer.Option(
            "--format",
            help="table; jsonl (one instruction a line, as the pull API gives it); csv (for a spreadsheet: fill in "
            "its outcome column and load it with `outcome --csv`); html (a printable work list).",
        ),
    ] = "table",
    lang: Annotated[str, typer.Option("--lang", help="Language of the csv and html work list: cs or en.")] = "cs",
    after: Annotated[int, typer.Option("--after", min=0, help="Only instructions after this sequence number.")] = 0,
) -> None:
    """What the library system must carry out: per instruction, the reader's or recording's id, what, by when, why.

    The CSV and the printable HTML work list are for libraries that carry instructions out by hand in their
    system: `kodex instructions list --library kntb --state pending --format html > work.html`.
    """
    if state not in VIEWS:
        raise typer.BadParameter(f"use one of: {', '.join(VIEWS)}", param_hint="--state")
    if output not in _FORMATS:
        raise typer.BadParameter(f"use one of: {', '.join(_FORMATS)}", param_hint="--format")
    if lang not in _WORDS:
        raise typer.BadParameter("use cs or en", param_hint="--lang")

    def body() -> None:
        command = invocation(ctx)
        command.library(library)
        work = command.workspace
        found = list_instructions(work.engine, command.ruleset, work.master, library, state=state, after=after)
        if output == "jsonl":
            for instruction in found:
                sys.stdout.write(json.dumps(instruction.as_json(), ensure_ascii=False) + "\n")
        elif output == "csv":
            _csv(found, lang)
        elif output == "html":
            name = command.ruleset.library(library).library.name
            sys.stdout.write(work_list(found, lang, name, command.today(library).isoformat()))
        else:
            _table(found, state)

    run_body(body)


def work_list(found: list[Instruction], lang: str, library_name: str, today: str) -> str:
    """The printable work list (HTML, Czech by default): what to do, for which id, by when, why with the article."""
    words = _WORDS[lang]
    rows = [{**i.as_json(), "what": i.what_cs if lang == "cs" else i.what} for i in found]
    template = _templates().get_template("work_list.html")
    overdue = sum(1 for i in found if i.overdue)
    return template.render(t=words, lang=lang, rows=rows, library_name=library_name, today=today, overdue=overdue)


def _templates() -> Environment:
    return Environment(loader=PackageLoader("kodex.api", "templates"), autoescape=select_autoescape(["html"]))


def _csv(found: Iterable[Instruction], lang: str) -> None:
    writer = csv.DictWriter(sys.stdout, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for i in found:
        row = i.as_json()
        writer.writerow(
            {
                **{k: _cell(row[k]) for k in CSV_COLUMNS if k in row},
                "what": i.what_cs if lang == "cs" else i.what,
                "overdue": "yes" if i.overdue else "",
                "outcome": "",
                "code": "",
                "detail": "",
            }
        )


def _cell(value: Any) -> Any:
    """A value a spreadsheet shows as text: one that would start a formula (= + - @, a tab or CR) gets a leading '.

    A library system's id is whatever it sent (e.g. `=HYPERLINK(…)`); a work list opened in a spreadsheet must
    not run it. The outcome is loaded back by `id`, a UUID, which never starts so.
    """
    if isinstance(value, str) and value[:1] in {"=", "+", "-", "@", "\t", "\r"}:
        return "'" + value
    return value


def _table(found: list[Instruction], state: str) -> None:
    table = Table(title=f"instructions ({state}): {len(found)}")
    for column in ("#", "action", "subject", "due", "state", "rule", "id"):
        table.add_column(column)
    for i in found:
        due = (i.due_on.isoformat() if i.due_on else "") + (" OVERDUE" if i.overdue else "")
        table.add_row(str(i.sequence), i.action, f"{i.subject_type} {i.subject_id}", due, i.state, i.rule, i.id)
    out.print(table)


@instructions_app.command("outcome")
def instructions_outcome(
    ctx: typer.Context,
    library: LibraryArg,
    instruction_id: Annotated[str | None, typer.Argument(help="The instruction's id (from `list`).")] = None,
    outcome: Annotated[
        str | None, typer.Option("--outcome", help="done, failed, or rejected (the system cannot: give --code).")
    ] = None,
    code: Annotated[str | None, typer.Option("--code", help="The library system's code, e.g. has_debt.")] = None,
    detail: Annotated[str | None, typer.Option("--detail", help="What happened, in words (kept encrypted).")] = None,
    from_csv: Annotated[
        Path | None,
        typer.Option(
            "--csv",
            help="A work list from `list --format csv` with its outcome column filled in (done, failed, rejected; "
            "code and detail optional): every filled row is recorded. '-' reads standard input.",
        ),
    ] = None,
) -> None:
    """Record what the library system did about an instruction: done, failed, or rejected with its code.

    The same outcome again changes nothing; after done or rejected another outcome is refused (exit 12). Each
    outcome is an entry in the decision log. Either give an ID and --outcome, or --csv.
    """
    if (instruction_id is None) == (from_csv is None):
        raise typer.BadParameter("give either an instruction ID with --outcome, or --csv FILE", param_hint="ID")
    if instruction_id is not None and outcome not in OUTCOMES:
        raise typer.BadParameter(f"use one of: {', '.join(OUTCOMES)}", param_hint="--outcome")

    def body() -> None:
        command = invocation(ctx)
        command.library(library)
        work = command.workspace
        if from_csv is not None:
            given = _outcomes_from(from_csv)
        elif instruction_id is not None and outcome is not None:  # checked above: --outcome is one of OUTCOMES
            given = [(instruction_id, outcome, code, detail)]
        actor = {"type": "cli", "id": None, "role": None}
        try:  # one transaction: a file is loaded whole or not at all
            recorded = record_outcomes(work.engine, command.ruleset, work.master, library, given, actor=actor, by="cli")
        except (Conflict, SubjectNotFound) as refused:
            if from_csv is None:
                raise
            raise type(refused)(
                f"{from_csv}: {refused}. Nothing was recorded: correct or empty that row's outcome and load the "
                "file again"
            ) from None
        for instruction, did in recorded:
            verb = "recorded" if did else "already recorded, unchanged"
            out.print(
                f"instruction {instruction.sequence} ({instruction.id}): {instruction.state} {verb}", markup=False
            )
        if from_csv is not None:
            changed = sum(did for _, did in recorded)
            out.print(f"{changed} outcome(s) recorded, {len(recorded) - changed} unchanged", markup=False)

    run_body(body)


def _outcomes_from(path: Path) -> list[tuple[str, str, str | None, str | None]]:
    """The filled rows of a work-list CSV: (id, outcome, code, detail); rows without an outcome are skipped."""
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8-sig")
    except OSError as error:
        raise InvalidRequest(f"cannot read {path}: {error.strerror}") from None
    reader = csv.DictReader(text.splitlines())
    missing = {"id", "outcome"} - set(reader.fieldnames or ())
    if missing:
        raise InvalidRequest(f"{path}: the CSV has no {', '.join(sorted(missing))} column (use `list --format csv`)")
    rows = []
    for line, row in enumerate(reader, start=2):
        said = (row.get("outcome") or "").strip()
        if not said:
            continue
        if said not in OUTCOMES:
            raise InvalidRequest(f"{path}, line {line}: outcome must be one of {', '.join(OUTCOMES)}")
        rows.append((row["id"].strip(), said, (row.get("code") or "").strip() or None,
                     (row.get("detail") or "").strip() or None))  # fmt: skip
    return rows


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
        secret = set_webhook(work.engine, work.master, library, url, private=True)  # the server's own line
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
