"""`kodex audit …` and `kodex decisions`: the auditor's commands over the decision log.

Reading, verifying and proving need only the database (no master key): an
auditor can run them on a copy of the store. Signing a checkpoint and
rotating the signing key need the master key.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import Progress
from rich.table import Table

from kodex.api.console import err, out, run_body
from kodex.audit.entries import KINDS, now
from kodex.audit.keys import public_key_pem, public_keys, read_public_keys, rotate_signing_key
from kodex.audit.log import LogFilter, checkpoint, entries_text, origin_of, prove, query
from kodex.audit.note import raw_key, verifier_key
from kodex.audit.verify import verify_log, verify_proof
from kodex.config import load_settings
from kodex.errors import LogBroken
from kodex.rules.nesting import json_too_deep
from kodex.services.setup import open_workspace
from kodex.services.tenants import list_libraries
from kodex.store.database import open_store

if TYPE_CHECKING:  # the engine only passes through: kodex.api imports no SQLAlchemy at run time (.importlinter)
    from sqlalchemy import Engine

__all__ = ["audit_app", "decisions_command"]

audit_app = typer.Typer(
    rich_markup_mode=None,
    help=(
        "The tamper-evident decision log: verify it, prove an entry, export it, sign checkpoints, manage the "
        "signing key. Exit code 9: the log or a proof does not verify."
    ),
    no_args_is_help=True,
)

PublicKeyFile = Annotated[
    Path | None,
    typer.Option(
        "--public-key",
        help="PEM file of the public keys you trust (from `kodex audit public-key --all`). "
        "Without it, the keys the store holds are used.",
    ),
]
Library = Annotated[str | None, typer.Option("--library", help="Only this library's log.")]
Rule = Annotated[str | None, typer.Option("--rule", help="Only entries of this rule id.")]
Action = Annotated[str | None, typer.Option("--action", help="Only entries of this action (e.g. anonymise).")]
Kind = Annotated[str | None, typer.Option("--kind", help=f"Only entries of this kind: {', '.join(KINDS)}.")]
Outcome = Annotated[
    str | None, typer.Option("--outcome", help="Only this outcome (applied, reported, proposed, retained, ...).")
]
FromDay = Annotated[str | None, typer.Option("--from", help="First day (YYYY-MM-DD) of as_of, inclusive.")]
ToDay = Annotated[str | None, typer.Option("--to", help="Last day (YYYY-MM-DD) of as_of, inclusive.")]


def _store() -> Engine:
    return open_store(load_settings().database_url)


def _day(text: str | None, option: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter("write a day as YYYY-MM-DD", param_hint=option) from None


def _trusted(path: Path | None) -> Any:
    if path is None:
        return None
    if not path.is_file():
        raise typer.BadParameter(f"no such file: {path}", param_hint="--public-key")
    return read_public_keys(path.read_bytes(), str(path))


@audit_app.command("verify")
def verify_command(
    library: Library = None,
    public_key: PublicKeyFile = None,
    kept: Annotated[
        Path | None,
        typer.Option(
            "--checkpoint",
            help="A signed checkpoint note you kept (`kodex audit checkpoint --format note`), or a file of them: "
            "the log must be consistent with each (needs --library).",
        ),
    ] = None,
) -> None:
    """Recompute every log's Merkle tree; check each checkpoint's signature and the consistency between them.

    With --checkpoint, also prove the log consistent with checkpoints kept outside kodex: a log rolled back to an
    older copy fails. Names the first bad entry or checkpoint of each library and exits 9 when anything is wrong.
    """
    if kept is not None and library is None:
        raise typer.BadParameter("name the library whose checkpoints you kept", param_hint="--library")

    def body() -> None:
        trusted = _trusted(public_key)
        notes = None if kept is None else _read(kept, "--checkpoint")
        engine = _store()
        with Progress(console=err, transient=True, disable=not err.is_terminal) as bar:
            tasks: dict[str, Any] = {}

            def advance(name: str, done: int, total: int) -> None:
                if name not in tasks:
                    tasks[name] = bar.add_task(f"verifying {name}", total=total)
                bar.update(tasks[name], completed=done, total=max(total, done))

            verdicts = verify_log(engine, library=library, trusted=trusted, progress=advance, kept=notes)
        keys = "the trusted keys given" if trusted is not None else "the store's public keys"
        for verdict in verdicts:
            state = "intact" if verdict.ok else "NOT intact"
            out.print(
                f"{verdict.library}: {verdict.entries} entries, {verdict.checkpoints} checkpoint(s) — {state}",
                markup=False,
            )
        problems = [p for v in verdicts for p in v.problems]
        if problems:
            raise LogBroken("\n".join(problems))
        out.print(f"every entry hashes into its tree; every checkpoint verifies with {keys}", markup=False)
        if notes is not None:
            out.print(f"the log extends the {verdicts[0].kept} checkpoint(s) you kept", markup=False)

    run_body(body)


@audit_app.command("prove")
def prove_command(
    decision_id: Annotated[str, typer.Argument(help="The entry's id (`kodex decisions` lists them).")],
) -> None:
    """Print a self-contained JSON proof that the entry is in the log: entry, index, tree size, path, signed checkpoint.

    Check it anywhere, without the database: kodex audit verify-proof FILE --public-key KEY.
    """

    def body() -> None:
        proof = prove(_store(), decision_id)
        sys.stdout.write(json.dumps(proof, ensure_ascii=False, indent=2) + "\n")

    run_body(body)


# A proof nests 6 levels (the proof, its entry, the entry's reasons, a reason, its values, a value's list); the
# limit leaves room for entries of later schema versions and stops a crafted file before the JSON parser recurses.
MAX_PROOF_DEPTH = 32


@audit_app.command("verify-proof")
def verify_proof_command(
    file: Annotated[Path, typer.Argument(help="A proof from `kodex audit prove` ('-' reads standard input).")],
    public_key: Annotated[
        Path, typer.Option("--public-key", help="PEM file with the log's public key(s) (`kodex audit public-key`).")
    ],
) -> None:
    """Check a proof offline, with no database: the checkpoint's signature, and the entry's path to its root."""

    def body() -> None:
        keys = _trusted(public_key)
        text = sys.stdin.read() if str(file) == "-" else _read(file, "FILE")
        if json_too_deep(text, MAX_PROOF_DEPTH):  # json.loads recurses per level: refuse before it does
            raise typer.BadParameter(f"not a proof: nested more than {MAX_PROOF_DEPTH} levels deep", param_hint="FILE")
        try:
            document = json.loads(text)
        except json.JSONDecodeError as error:
            raise typer.BadParameter(f"not JSON ({error.msg}, line {error.lineno})", param_hint="FILE") from None
        out.print("proof verifies: " + verify_proof(document, keys), markup=False)

    run_body(body)


def _read(file: Path, hint: str) -> str:
    if not file.is_file():
        raise typer.BadParameter(f"no such file: {file}", param_hint=hint)
    try:
        return file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise typer.BadParameter(f"{file} is not UTF-8 text", param_hint=hint) from None


@audit_app.command("export")
def export_command(
    library: Library = None,
    rule: Rule = None,
    action: Action = None,
    kind: Kind = None,
    from_: FromDay = None,
    to: ToDay = None,
) -> None:
    """Write the log's entries as JSON Lines, exactly as hashed (SHA-256 of 0x00 + line is the leaf hash).

    Ordered by library, then index: an export of a whole library recomputes its tree.
    """
    where = LogFilter(library, kind, rule, action, day_from=_day(from_, "--from"), day_to=_day(to, "--to"))

    def body() -> None:
        write = sys.stdout.write
        for text in entries_text(_store(), where):
            write(text + "\n")

    run_body(body)


@audit_app.command("checkpoint")
def checkpoint_command(
    library: Library = None,
    output: Annotated[
        str,
        typer.Option(
            "--format",
            help="text (a line per library), or note: the signed checkpoint as a C2SP signed note, to keep outside "
            "kodex and check later with `kodex audit verify --checkpoint`.",
        ),
    ] = "text",
) -> None:
    """Sign a checkpoint of each library's log now (every run also ends with one) and print it. Needs the master key."""
    if output not in {"text", "note"}:
        raise typer.BadParameter("use text or note", param_hint="--format")

    def body() -> None:
        work = open_workspace(load_settings())
        names = [library] if library else _library_ids(work.engine)
        with work.engine.begin() as connection:
            for name in names:
                signed = checkpoint(connection, name, work.master, now())
                if output == "note":
                    sys.stdout.write(signed.signed_note(public_keys(connection)[signed.key_id]))
                    continue
                out.print(
                    f"{signed.origin}: {signed.size} entries, root {signed.as_json()['root']}, "
                    f"signed by key {signed.key_id} at {signed.time}",
                    markup=False,
                )

    run_body(body)


@audit_app.command("public-key")
def public_key_command(
    all_: Annotated[bool, typer.Option("--all", help="Every key that ever signed (rotated ones too).")] = False,
    output: Annotated[
        str,
        typer.Option(
            "--format",
            help="pem, or vkey: a verifier key line per library (<origin>+<key hash>+<key>, as signed-note "
            "verifiers and witnesses take it).",
        ),
    ] = "pem",
    library: Annotated[str | None, typer.Option("--library", help="With --format vkey: only this library.")] = None,
) -> None:
    """Print the checkpoint signing public key (PEM) for auditors; --all for every key, rotated ones included."""
    if output not in {"pem", "vkey"}:
        raise typer.BadParameter("use pem or vkey", param_hint="--format")

    def body() -> None:
        engine = _store()
        with engine.connect() as connection:
            keys = public_keys(connection)
        names = [library] if library else _library_ids(engine)
        if not keys:
            raise typer.BadParameter("the store has no signing key yet; `kodex init` or a run creates it")
        chosen = list(keys.items()) if all_ else list(keys.items())[-1:]
        for kid, public in chosen:
            if output == "pem":
                sys.stdout.write(f"# kodex checkpoint key {kid}\n{public_key_pem(public)}")
                continue
            for name in names:
                sys.stdout.write(verifier_key(origin_of(name), raw_key(public)) + "\n")

    run_body(body)


@audit_app.command("rotate-key")
def rotate_key_command() -> None:
    """Start signing with a new key; the old private key is destroyed, its public key kept (old checkpoints verify)."""

    def body() -> None:
        work = open_workspace(load_settings())
        with work.engine.begin() as connection:
            old, new = rotate_signing_key(connection, work.master)
        out.print(f"signing key {new} is active" + (f"; {old} retired" if old else ""), markup=False)
        out.print("give auditors the new public key: kodex audit public-key --all > kodex-keys.pem", markup=False)

    run_body(body)


def decisions_command(
    library: Library = None,
    rule: Rule = None,
    action: Action = None,
    subject: Annotated[str | None, typer.Option("--subject", help="Only this subject pseudonym.")] = None,
    run: Annotated[str | None, typer.Option("--run", help="Only entries of this run id.")] = None,
    kind: Kind = None,
    outcome: Outcome = None,
    from_: FromDay = None,
    to: ToDay = None,
    output: Annotated[str, typer.Option("--format", help="table, or jsonl (one entry per line).")] = "table",
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000, help="Entries per page.")] = 50,
    after: Annotated[
        int, typer.Option("--after", min=0, help="Continue after this position (printed at the end of a page).")
    ] = 0,
    all_: Annotated[bool, typer.Option("--all", help="Every matching entry, page after page.")] = False,
) -> None:
    """Query the decision log: by library, rule, action, subject pseudonym, run, kind, outcome and as_of days.

    Pages are keyset-paginated: a full page ends with the --after value that continues it.
    """
    if output not in {"jsonl", "table"}:
        raise typer.BadParameter("use jsonl or table", param_hint="--format")
    where = LogFilter(
        library, kind, rule, action, outcome, subject, run, day_from=_day(from_, "--from"), day_to=_day(to, "--to")
    )

    def body() -> None:
        engine = _store()
        last = after
        pages = _pages(engine, where, after, limit, all_)
        table = _entry_table() if output == "table" else None
        count = 0
        for seq, entry in pages:
            last, count = seq, count + 1
            if table is None:
                sys.stdout.write(json.dumps(entry, ensure_ascii=False) + "\n")
            else:
                _add_row(table, entry)
        if table is not None:
            out.print(table)
        if not all_ and count == limit:
            err.print(f"more entries may follow: add --after {last}", markup=False)

    run_body(body)


def _library_ids(engine: Engine) -> list[str]:
    return sorted(info.id for info in list_libraries(engine))


def _pages(
    engine: Engine, where: LogFilter, after: int, limit: int, every: bool
) -> Iterator[tuple[int, dict[str, Any]]]:
    while True:
        page = query(engine, where, after=after, limit=limit)
        yield from page
        if not every or len(page) < limit:
            return
        after = page[-1][0]


def _entry_table() -> Table:
    table = Table()
    for column in ("id", "library", "as_of", "kind", "subject", "rule", "action", "outcome", "cite"):
        table.add_column(column)
    return table


def _add_row(table: Table, entry: dict[str, Any]) -> None:
    table.add_row(
        entry["id"],
        entry["library"],
        entry["as_of"],
        entry["kind"],
        entry["subject"] or "",
        entry["rule"] or "",
        entry["action"] or "",
        entry["outcome"],
        entry["cite"] or "",
    )
