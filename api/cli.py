"""The kodex command line: thin commands over the service layer.

Exit codes: 0 success; 2 wrong usage; 3 invalid policy; 4 invalid records;
5 a policy example failed or a rule lacks coverage; 6 subject not found;
7 setup missing or wrong (store, master key, configuration); 8 a run is in progress;
9 the decision log or a proof does not verify; 10 the role given has no authority for it;
11 the library has no data-processing agreement recorded (it takes no personal data yet);
12 a conflict with what is recorded (an instruction's outcome given otherwise before);
13 a check of the library system failed (kodex connectors test).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from kodex.api.console import configure_logging, err, out, parse_as_of, run_body
from kodex.api.deferred import Deferring, stand_in
from kodex.api.invocation import invocation

if TYPE_CHECKING:  # the commands import what they use when they run: `kodex --help` loads no store, web or engine
    from rich.progress import Progress
    from rich.table import Table

    from kodex.rules.ruleset import Ruleset
    from kodex.services.setup import Workspace

# Help is click's plain text, not rich's panels: rendering with rich costs more than the rest of `kodex --help`
# (bench/cli_startup.py). Lines run to the terminal's width, up to 160 columns, so a command's summary is whole.
app = typer.Typer(
    rich_markup_mode=None,
    context_settings={"max_content_width": 160},
    help="kodex: library regulations and GDPR retention as executable, cited rules.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    cls=Deferring,
)
policy_app = typer.Typer(
    rich_markup_mode=None, help="Check and test the policy (policies.yaml).", no_args_is_help=True, cls=Deferring
)
_AUDIT, _SERVICE = "kodex.api.audit_commands", "kodex.api.service_commands"
stand_in(app, "decisions", _AUDIT, "decisions_command", "Query the decision log: by library, rule, action, subject pseudonym, run, kind, outcome and as_of days.")  # fmt: skip
app.add_typer(policy_app, name="policy")
stand_in(app, "audit", _AUDIT, "audit_app", "The tamper-evident decision log: verify it, prove an entry, export it, sign checkpoints, manage the signing key. Exit code 9: the log or a proof does not verify.")  # fmt: skip
stand_in(app, "libraries", _SERVICE, "libraries_app", "Libraries (tenants) and their data-processing agreements.")
stand_in(app, "users", _SERVICE, "users_app", "Users of the HTTP service and their bearer tokens.")
stand_in(app, "requests", _SERVICE, "requests_app", "Data-subject requests: erasure, loan-history erasure.")
stand_in(app, "holds", _SERVICE, "holds_app", "Legal holds kept in kodex (they outlast imports).")
stand_in(app, "proposals", _SERVICE, "proposals_app", "Proposals, such as exclusions, for their deciding role.")
stand_in(app, "exceptions", _SERVICE, "exceptions_app", "Exceptions to a rule: grant, list, revoke; each grant and revocation logged.")  # fmt: skip
_FEED = "kodex.api.instruction_commands"
stand_in(app, "instructions", _FEED, "instructions_app", "Instructions to the library system: list them (CSV and a Czech work list too), record outcomes, deliver.")  # fmt: skip
stand_in(app, "webhooks", _FEED, "webhooks_app", "Where a library's instructions are pushed (Standard Webhooks).")
stand_in(app, "connectors", _FEED, "connectors_app", "Adapters that carry instructions out in Koha or FOLIO themselves ([connectors.<library>] in the config).")  # fmt: skip
stand_in(policy_app, "policy diff", _SERVICE, "policy_diff_command", "Which decisions would change for the library's current readers and recordings if CANDIDATE were adopted.")  # fmt: skip


PolicyOption = Annotated[
    Path | None,
    typer.Option(
        "--policy",
        help="Policy file. Default: $KODEX_POLICY, else the config's `policy`, else the bundled policies.yaml.",
        show_default=False,
    ),
]
AsOf = Annotated[
    str,
    typer.Option(
        "--as-of",
        help="Day (YYYY-MM-DD) or moment (ISO 8601 with offset) the decisions are taken for. A day means 00:00 in each library's time zone.",
    ),
]
LibraryOption = Annotated[str | None, typer.Option("--library", help="Only this library (its id, e.g. svkpk).")]
RecordFile = Annotated[
    str, typer.Argument(help="Records as JSON Lines (the record contract), one a line; '-' reads standard input.")
]


_run = run_body


@policy_app.command("check")
def policy_check(
    ctx: typer.Context,
    path: Annotated[Path | None, typer.Argument(help="Policy file (default: the active policy).")] = None,
    seeds: Annotated[
        Path | None,
        typer.Option("--seeds", help="Directory of the regulations' texts: also check every quote is verbatim."),
    ] = None,
) -> None:
    """Validate a policy: structure, semantics, and (with --seeds) verbatim quotes. Prints file:line:col per error."""

    def body() -> None:
        from kodex.errors import InvalidPolicy  # noqa: PLC0415
        from kodex.rules.loading import load_policy  # noqa: PLC0415
        from kodex.rules.quotes import check_quotes  # noqa: PLC0415

        loaded = load_policy(invocation(ctx, path).policy_file)
        if seeds is not None:
            texts = {p.name: p.read_text(encoding="utf-8") for p in seeds.glob("*.txt")}
            problems = check_quotes(loaded, texts)
            if problems:
                raise InvalidPolicy(problems)
        rules = sum(len(library.rules) for library in loaded.policy.libraries)
        out.print(
            f"{loaded.file}: valid — {len(loaded.policy.libraries)} libraries, {rules} rules, revision {loaded.revision}"
        )

    _run(body)


@policy_app.command("test")
def policy_test(
    ctx: typer.Context,
    path: Annotated[Path | None, typer.Argument(help="Policy file (default: the active policy).")] = None,
) -> None:
    """Run every rule's examples and print per-rule coverage; fail on a wrong result or missing coverage."""

    def body() -> None:
        from rich.table import Table  # noqa: PLC0415

        from kodex.errors import ExamplesFailed  # noqa: PLC0415
        from kodex.rules.examples import run_examples  # noqa: PLC0415

        ruleset = invocation(ctx, path).ruleset
        coverage = run_examples(ruleset)
        table = Table(title=f"policy examples — revision {ruleset.revision[:12]}")
        for column in ("rule", "examples", "fires", "does not fire", "blocked", "deadline day / day after", "result"):
            table.add_column(column)
        failed = 0
        for entry in coverage:
            problems = [f"{r.name}: expected {r.expected}, got {r.got}" for r in entry.failed] + entry.gaps
            failed += bool(problems)
            deadline = "—" if not entry.has_deadline else f"{_tick(entry.at_deadline)} / {_tick(entry.after_deadline)}"
            table.add_row(
                entry.rule,
                str(len(entry.results)),
                str(entry.firing),
                str(entry.not_firing),
                str(entry.blocked),
                deadline,
                "[green]ok[/]" if not problems else "[red]" + "; ".join(problems) + "[/]",
            )
        out.print(table)
        examples = sum(len(e.results) for e in coverage)
        if failed:
            raise ExamplesFailed(f"{failed} of {len(coverage)} rules failed")
        out.print(f"{examples} examples, {len(coverage)} rules: all pass")

    _run(body)


@app.command("evaluate")
def evaluate_command(
    ctx: typer.Context,
    file: RecordFile,
    as_of: AsOf,
    library: LibraryOption = None,
    all_: Annotated[bool, typer.Option("--all", help="Also print `retain` decisions with their reasons.")] = False,
    output: Annotated[str, typer.Option("--format", help="jsonl (one decision a line) or table.")] = "jsonl",
    skip_invalid: Annotated[
        bool,
        typer.Option(
            "--skip-invalid", help="Skip invalid lines (each reported on stderr) instead of refusing the file."
        ),
    ] = False,
    policy: PolicyOption = None,
) -> None:
    """Decide for every reader and camera recording in FILE as of --as-of; print the decisions that call for something."""
    moment = parse_as_of(as_of)
    if output not in {"jsonl", "table"}:
        raise typer.BadParameter("use jsonl or table", param_hint="--format")

    def body() -> None:
        import gc  # noqa: PLC0415

        from rich.progress import Progress  # noqa: PLC0415

        from kodex.services.evaluation import evaluate, validate  # noqa: PLC0415

        command = invocation(ctx, policy)
        ruleset = command.ruleset
        if library is not None:
            command.library(library)
        validated = validate(_lines(file), ruleset, moment, skip_invalid=skip_invalid)
        for problem in validated.skipped:
            err.print(f"skipped {problem}", markup=False)
        records = validated.records
        gc.freeze()  # the records live until the command ends: keep the collector from rescanning them per batch
        total = len(records.readers) + len(records.recordings)
        with Progress(console=err, transient=True, disable=not err.is_terminal) as bar:
            task = bar.add_task("deciding", total=total)
            decisions = evaluate(
                records, ruleset, moment, library=library, include_all=all_,
                progress=lambda done: bar.update(task, completed=done) if done % 1000 == 0 or done == total else None,
            )  # fmt: skip
            if output == "jsonl":
                write = sys.stdout.write
                for decision in decisions:
                    write(json.dumps(decision, ensure_ascii=False) + "\n")
            else:
                out.print(_decision_table(decisions))

    _run(body)


@app.command("explain")
def explain_command(
    ctx: typer.Context,
    reader: Annotated[str, typer.Option("--reader", help="The reader's id (card number).")],
    file: Annotated[
        str | None,
        typer.Argument(help="Records as JSON Lines ('-': standard input). Without it: the reader kodex stores."),
    ] = None,
    as_of: Annotated[str | None, typer.Option("--as-of", help="Day or moment to decide for (default: now).")] = None,
    library: LibraryOption = None,
    policy: PolicyOption = None,
) -> None:
    """Explain in plain words, rule by rule, what applies to one reader and why (from FILE, or from the store)."""
    moment = parse_as_of(as_of) if as_of is not None else None

    def body() -> None:
        from kodex.clock import now  # noqa: PLC0415
        from kodex.services.evaluation import explain_reader, validate  # noqa: PLC0415
        from kodex.services.inquiry import explain_stored  # noqa: PLC0415

        command = invocation(ctx, policy)
        ruleset = command.ruleset
        if file is None:
            if library is None:
                raise typer.BadParameter("give the reader's library to explain a stored reader", param_hint="--library")
            work = command.workspace
            when = moment if moment is not None else command.now(library)
            lines = explain_stored(work.engine, ruleset, work.master, library, reader, when).lines
        else:  # by default as of now in the reader's library's time zone, as a stored reader is explained
            at = moment if moment is not None else now()
            validated = validate(_lines(file), ruleset, at, skip_invalid=True)
            for problem in validated.skipped:
                err.print(f"skipped {problem}", markup=False)
            found = library or _library_of(validated.records.readers, reader)
            when = command.now(found) if moment is None and found in ruleset.libraries else at
            lines = explain_reader(validated.records, ruleset, when, reader, library)
        for line in lines:
            out.print(line, markup=False)

    _run(body)


def _library_of(readers: list[Any], reader: str) -> str | None:
    """The library of the one reader with this id in the file (None: none or several, which explain_reader says)."""
    found = {r.library for r in readers if r.id == reader}
    return found.pop() if len(found) == 1 else None


def _lines(file: str) -> Iterator[str]:
    if file == "-":
        yield from sys.stdin
        return
    path = Path(file)
    if not path.is_file():
        raise typer.BadParameter("no such file", param_hint="FILE")
    with path.open(encoding="utf-8") as handle:
        yield from handle


def _decision_table(decisions: Iterator[dict[str, Any]]) -> Table:
    from rich.table import Table  # noqa: PLC0415

    table = Table()
    for column in ("library", "subject", "rule", "action", "cite", "why"):
        table.add_column(column)
    for d in decisions:
        why = d.get("error") or ("exception " + d["exception"]["id"] if "exception" in d else "")
        if "legal_hold" in d:
            why = "legal hold"
        table.add_row(d["library"], d["subject"], d["rule"], d["action"], d["cite"], why)
    return table


def _tick(flag: bool) -> str:
    return "[green]✓[/]" if flag else "[red]✗[/]"


@app.command("init")
def init_command(ctx: typer.Context, policy: PolicyOption = None) -> None:
    """Create what kodex needs and is missing: master key, database (SQLite by default), config with the schedule."""

    def body() -> None:
        from kodex.services.setup import initialise  # noqa: PLC0415

        command = invocation(ctx, policy)
        for line in initialise(command.settings, command.ruleset):
            out.print(line, markup=False)

    _run(body)


@app.command("import")
def import_command(
    ctx: typer.Context,
    file: RecordFile,
    skip_invalid: Annotated[
        bool,
        typer.Option("--skip-invalid", help="Import the valid lines and report each invalid one, instead of nothing."),
    ] = False,
    policy: PolicyOption = None,
) -> None:
    """Import records (upsert by library and id). A file with an invalid line imports nothing unless --skip-invalid."""

    def body() -> None:
        from rich.progress import Progress  # noqa: PLC0415
        from rich.table import Table  # noqa: PLC0415

        from kodex.services.importing import import_records  # noqa: PLC0415

        command = invocation(ctx, policy)
        ruleset, settings, work = command.ruleset, command.settings, command.workspace
        lines = list(sys.stdin) if file == "-" else None
        read = (lambda: iter(lines)) if lines is not None else (lambda: _lines(file))
        with Progress(console=err, transient=True, disable=not err.is_terminal) as bar:
            task = bar.add_task("importing", total=None)

            def advance(stage: str, lines: int) -> None:
                bar.update(task, description=f"{stage} (line {lines:,})")

            summary = import_records(
                read,
                work.engine,
                ruleset,
                work.master,
                date.today(),  # the import's day, as before: each record's own day is decided at the run
                skip_invalid=skip_invalid,
                progress=advance,
                recordings=settings.recordings,
            )
        for problem in summary.skipped:
            err.print(f"skipped {problem}", markup=False)
        table = Table(title="import")
        for column in ("record", "added", "updated", "unchanged"):
            table.add_column(column, justify="right" if column != "record" else "left")
        for kind in ("reader", "loan", "camera_recording", "incident", "exception"):
            table.add_row(kind, str(summary.added[kind]), str(summary.updated[kind]), str(summary.unchanged[kind]))
        out.print(table)
        if summary.anonymised:
            out.print(
                f"{summary.anonymised} reader record(s) left out: kodex has anonymised those readers", markup=False
            )
        if summary.gone["camera_recording"]:
            out.print(
                f"{summary.gone['camera_recording']} camera recording(s) left out: kodex has purged them", markup=False
            )
        if summary.gone["loan"]:
            out.print(
                f"{summary.gone['loan']} loan(s) left out: kodex has erased them from the loan history", markup=False
            )
        for action, n in sorted(summary.not_carried_out.items()):
            out.print(
                f"{n} {action} instruction(s) not carried out: the library system reported them done, but this "
                "import still holds what they were to remove (kodex instructions list --state not_carried_out)",
                markup=False,
            )

    _run(body)


@app.command("export")
def export_command(
    ctx: typer.Context,
    reader: Annotated[str, typer.Option("--reader", help="The reader's id (as in the records).")],
    library: Annotated[str, typer.Option("--library", help="The reader's library.")],
) -> None:
    """Everything kodex holds about one reader, decrypted, as JSON (the copy owed under GDPR Article 15)."""

    def body() -> None:
        from kodex.services.access_copy import access_copy  # noqa: PLC0415

        work = invocation(ctx).workspace
        copy = access_copy(work.engine, work.master, library, reader)
        sys.stdout.write(json.dumps(copy, ensure_ascii=False, indent=2) + "\n")

    _run(body)


@app.command("run")
def run_command(
    ctx: typer.Context,
    library: LibraryOption = None,
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="Day or moment to decide for (default: now, in each library's time zone)."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Change nothing: store and print the plan of what would happen and why.")
    ] = False,
    full: Annotated[bool, typer.Option("--full", help="Review every subject, not only those due.")] = False,
    wait: Annotated[
        float, typer.Option("--wait", help="Seconds to wait for another run of the same library to finish.")
    ] = 0.0,
    output: Annotated[str, typer.Option("--format", help="table, or jsonl: every decision (or plan item).")] = "table",
    policy: PolicyOption = None,
) -> None:
    """The nightly job: decide for the subjects due, carry out what the rules decide, record every decision."""
    moment = parse_as_of(as_of) if as_of is not None else None
    if output not in {"jsonl", "table"}:
        raise typer.BadParameter("use jsonl or table", param_hint="--format")

    def body() -> None:
        from rich.progress import Progress  # noqa: PLC0415

        from kodex.retention.run import plan_decisions, refuse_look_ahead, run_decisions, run_library  # noqa: PLC0415

        command = invocation(ctx, policy)
        ruleset, settings = command.ruleset, command.settings
        chosen = [command.library(library)] if library else list(ruleset.libraries)
        for library_id in chosen:  # no library runs if one of them may not look that far ahead
            if moment is not None:
                refuse_look_ahead(ruleset, library_id, moment, dry_run=dry_run)
        work = command.workspace
        results = []
        with Progress(console=err, transient=True, disable=not err.is_terminal) as bar:
            for library_id in chosen:
                task = bar.add_task(f"{library_id}{' (dry run)' if dry_run else ''}", total=None)
                results.append(
                    run_library(
                        work.engine, ruleset, work.master, library_id,
                        moment if moment is not None else command.now(library_id),
                        dry_run=dry_run, full=full, batch_size=settings.batch_size, wait=wait,
                        progress=_advance(bar, task), recordings_folder=settings.recordings.folder(library_id),
                    )
                )  # fmt: skip
        if output == "jsonl":
            for result in results:
                decisions = plan_decisions if dry_run else run_decisions
                for decision in decisions(work.engine, result.run_id):
                    sys.stdout.write(json.dumps(decision, ensure_ascii=False) + "\n")
            return
        if dry_run:
            out.print(_plan_table(work.engine, results))
        out.print(_summary_table(results, dry_run))
        for result in results:
            for line in _escalation(result.library, result.instructions):
                out.print(line, markup=False)

    _run(body)


def _advance(bar: Progress, task: Any) -> Callable[[int, int], None]:
    def advance(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)

    return advance


PLAN_ROWS = 200


def _plan_table(engine: Any, results: list[Any]) -> Table:
    from rich.table import Table  # noqa: PLC0415

    from kodex.retention.run import plan_decisions  # noqa: PLC0415

    total = sum(result.planned for result in results)
    items = [item for result in results for item in plan_decisions(engine, result.run_id, PLAN_ROWS)][:PLAN_ROWS]
    table = Table(
        title=f"plan: {total} decision(s)"
        + (f", first {PLAN_ROWS} shown (all: --format jsonl)" if total > PLAN_ROWS else "")
    )
    for column in ("library", "subject", "would", "rule", "cite", "why"):
        table.add_column(column)
    for item in items[:PLAN_ROWS]:
        why = "; ".join(r["condition"] for r in item["reasons"] if r.get("holds")) or item.get("error", "")
        if "exception" in item:
            why = f"exception {item['exception']['id']} until {item['exception']['until']}"
        elif "legal_hold" in item:
            why = "legal hold"
        table.add_row(
            item["library"],
            item["subject_id"],
            f"{item['action']} ({item['outcome']})",
            item["rule"],
            item["cite"],
            why,
        )
    return table


# What each instruction count a run's summary carries means for the dpo, most urgent first
_ESCALATION = (
    ("not_carried_out", "NOT CARRIED OUT: the library system reported them done, but an import still held the data"),
    ("overdue", "OVERDUE: the library system has not done them by their deadline"),
    ("rejected", "REJECTED by the library system, each with its reason code (e.g. has_debt): decide what to do"),
    ("failed", "FAILED in the library system"),
)


def _escalation(library: str, counts: dict[str, int]) -> list[str]:
    """The library's instructions to its own system that need the dpo, in words (none: nothing is printed)."""
    lines = [
        f"{library}: {counts[state]} instruction(s) {said} (kodex instructions list --state {state})"
        for state, said in _ESCALATION
        if counts.get(state)
    ]
    if counts.get("pending"):
        lines.append(f"{library}: {counts['pending']} instruction(s) not yet delivered to the library system")
    return lines


def _summary_table(results: list[Any], dry_run: bool) -> Table:
    from rich.table import Table  # noqa: PLC0415

    outcomes = ("applied", "reported", "proposed", "retained", "failed", "error")
    table = Table(title="plan summary (nothing was changed)" if dry_run else "run summary")
    table.add_column("library")
    table.add_column("action")
    for outcome in outcomes:
        table.add_column(outcome, justify="right")
    for result in results:
        actions = sorted({a for a, _ in result.counts})
        if not actions:
            table.add_row(result.library, f"nothing to do ({result.reviewed} reviewed)", *["" for _ in outcomes])
        for action in actions:
            table.add_row(result.library, action, *[str(result.counts[(action, o)] or "") for o in outcomes])
    return table


@app.command(
    "serve",
    epilog=(
        'Where the schedule is set: KODEX_SCHEDULE_TIME (e.g. 03:15), else time = "02:00" in the \\[schedule] '
        "section of the config file (KODEX_HOME/kodex.toml, or the file KODEX_CONFIG names); default 02:00. In that "
        'section, libraries = { kntb = "03:30" } gives a library its own time, and misfire_grace_hours = 6 says how '
        "late a delayed run may still start. Times are local to each library's time zone (policies.yaml)."
    ),
)
def serve_command(
    ctx: typer.Context,
    host: Annotated[str, typer.Option("--host", help="Address to listen on (0.0.0.0: every interface).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8080,
    no_scheduler: Annotated[
        bool,
        typer.Option(
            "--no-scheduler",
            help="Serve the web app only and run no nightly jobs and no instruction relay in this process (e.g. "
            "when cron runs `kodex run` and `kodex instructions deliver`).",
        ),
    ] = False,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            min=1,
            max=64,
            help="HTTP worker processes (e.g. one per core), each with its own socket on the port (SO_REUSEPORT), "
            "so the kernel spreads connections over them. With more than one, the nightly jobs run in the "
            "supervising process and /health in the workers shows next_run as null.",
        ),
    ] = 1,
    policy: PolicyOption = None,
) -> None:
    """Run the kodex service: the HTTP API (/v1, OpenAPI at /docs), GET /health, and every library's nightly run.

    Each night, at its configured local time in its own time zone, each library's job runs as `kodex run` would (deciding as of the scheduled moment). On start, a night missed while the service was down is caught up once. However many service processes share the store, a library's night runs once: the others wait for it, then skip it. Every few seconds, the same process delivers the due instructions of every library with a webhook or a connector (one process per library at a time). Stop with Ctrl-C or SIGTERM.
    """

    command = invocation(ctx, policy)

    def body() -> tuple[Workspace, Ruleset]:  # a missing store, key or bad config stops here, with its exit code
        return command.workspace, command.ruleset

    # imported here: the web stack takes a third of a second that every other command need not wait
    import os  # noqa: PLC0415

    import uvicorn  # noqa: PLC0415

    from kodex.api.serving import UVICORN, serve_workers  # noqa: PLC0415
    from kodex.api.web import create_app  # noqa: PLC0415
    from kodex.services.scheduler import build_scheduler  # noqa: PLC0415

    work, ruleset = _run(body)
    configure_logging()
    scheduler = None if no_scheduler else build_scheduler(work, ruleset)
    relay = None
    if scheduler is not None:  # the relay runs beside the nightly jobs, in the one process that runs them
        from kodex.services.delivery import Relay  # noqa: PLC0415

        relay = Relay(work, ruleset)
        relay.add_to(scheduler)
        schedule = work.settings.schedule
        for library_id in ruleset.libraries:
            zone = ruleset.library(library_id).zone
            err.print(f"{library_id}: nightly at {schedule.time_for(library_id):%H:%M} {zone.key}", markup=False)
        scheduler.start()  # the catch-up jobs start now, in the scheduler's threads
    try:
        # kodex logs each request itself (api.web: route template, status, time; never a path value or a token)
        if workers == 1:
            uvicorn.run(create_app(work, ruleset, scheduler), host=host, port=port, **UVICORN)  # type: ignore[arg-type]
        else:  # each worker opens the same installation and policy itself (api.web.app_from_environment)
            os.environ["KODEX_POLICY"] = str(command.policy_file)
            _run(lambda: serve_workers(host, port, workers))
    finally:
        if scheduler is not None:
            # a run in progress is finished first (killing the process is safe too: the next start runs that night again)
            scheduler.shutdown(wait=True)
        if relay is not None:
            relay.close()
        work.engine.dispose()


if __name__ == "__main__":  # pragma: no cover
    app()
