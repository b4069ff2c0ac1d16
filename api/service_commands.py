"""Commands a person scripts against the service layer: tenants, users, requests, holds, exceptions, proposals.

Each is a thin wrapper over the same function the HTTP service calls (api/routes), so the two cannot drift.
Built only when one of them is called (api.deferred): this module imports the store.
"""

from __future__ import annotations

import json
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from kodex.api.console import out, parse_as_of, run_body
from kodex.api.invocation import invocation
from kodex.services.holds import release_hold, set_hold
from kodex.services.policy_diff import policy_diff
from kodex.services.policy_source import load_ruleset
from kodex.services.proposals import decide_proposal, list_proposals
from kodex.services.requests import KINDS, due_requests, file_request, outlook
from kodex.services.rule_exceptions import exception_authority, grant_exception, list_exceptions, revoke_exception
from kodex.services.tenants import (
    Agreement,
    agreement_history,
    list_libraries,
    onboard,
    record_agreement,
)
from kodex.services.users import ROLES, User, add_user, list_users, revoke_user

__all__ = [
    "exceptions_app",
    "holds_app",
    "libraries_app",
    "policy_diff_command",
    "proposals_app",
    "requests_app",
    "users_app",
]

libraries_app = typer.Typer(
    rich_markup_mode=None, help="Libraries (tenants) and their data-processing agreements.", no_args_is_help=True
)
users_app = typer.Typer(
    rich_markup_mode=None, help="Users of the HTTP service and their bearer tokens.", no_args_is_help=True
)
requests_app = typer.Typer(
    rich_markup_mode=None, help="Data-subject requests: erasure, loan-history erasure.", no_args_is_help=True
)
holds_app = typer.Typer(
    rich_markup_mode=None, help="Legal holds kept in kodex (they outlast imports).", no_args_is_help=True
)
proposals_app = typer.Typer(
    rich_markup_mode=None, help="Proposals, such as exclusions, for their deciding role.", no_args_is_help=True
)
exceptions_app = typer.Typer(
    rich_markup_mode=None,
    help="Exceptions to a rule: grant, list, revoke; each grant and revocation logged.",
    no_args_is_help=True,
)

LibraryArg = Annotated[str, typer.Option("--library", help="The library's id (e.g. svkpk).")]
PolicyOption = Annotated[
    Path | None, typer.Option("--policy", help="Policy file (default: the active policy).", show_default=False)
]


def _given_day(text: str, hint: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter("write a day as YYYY-MM-DD", param_hint=hint) from None


def _day(text: str | None, hint: str) -> date | None:
    """The day given (checked before anything is opened); None when not given: today in the library's zone."""
    return None if text is None else _given_day(text, hint)


# -- libraries ---------------------------------------------------------------------------------------------


@libraries_app.command("list")
def libraries_list(ctx: typer.Context) -> None:
    """Every library of the installation, with its agreement (or none: it takes no personal data yet)."""

    def body() -> None:
        work = invocation(ctx).workspace
        table = Table()
        for column in ("library", "name", "agreement signed", "reference"):
            table.add_column(column)
        for info in list_libraries(work.engine):
            signed = str(info.agreement.signed_on) if info.agreement else "[red]none: takes no personal data[/]"
            table.add_row(info.id, info.name, signed, info.agreement.reference if info.agreement else "")
        out.print(table)

    run_body(body)


@libraries_app.command("agreement")
def libraries_agreement(
    ctx: typer.Context,
    library_ids: Annotated[list[str], typer.Argument(help="One or more library ids.")],
    signed: Annotated[str, typer.Option("--signed", help="Day the data-processing agreement was signed.")],
    reference: Annotated[str, typer.Option("--reference", help="The agreement's number or file reference.")],
    policy: PolicyOption = None,
) -> None:
    """Record the data-processing agreement (GDPR Article 28) of libraries: from then on they take personal data."""
    day = _given_day(signed, "--signed")
    if not reference.strip():
        raise typer.BadParameter("give the agreement's number or file reference", param_hint="--reference")

    def body() -> None:
        command = invocation(ctx, policy)
        work, ruleset = command.workspace, command.ruleset
        for library in library_ids:
            onboard(work.engine, ruleset, library)
            record_agreement(work.engine, library, Agreement(day, reference.strip()))
            out.print(f"{library}: agreement {reference.strip()} of {day} recorded", markup=False)

    run_body(body)


@libraries_app.command("agreements")
def libraries_agreements(ctx: typer.Context, library: Annotated[str, typer.Argument(help="The library's id.")]) -> None:
    """Every data-processing agreement recorded for the library, newest (the one in force) first: when and by whom."""

    def body() -> None:
        work = invocation(ctx).workspace
        table = Table(title=f"{library}: data-processing agreements, newest first")
        for column in ("signed", "reference", "recorded", "recorded by", ""):
            table.add_column(column)
        for a in agreement_history(work.engine, library):
            table.add_row(
                str(a.signed_on), a.reference, f"{a.recorded_at:%Y-%m-%d %H:%M}" if a.recorded_at else "(before 0006)",
                _by(a.recorded_by_role, a.recorded_by), "in force" if a.current else "replaced",
            )  # fmt: skip
        out.print(table, markup=False)

    run_body(body)


# -- users --------------------------------------------------------------------------------------------------


@users_app.command("add")
def users_add(
    ctx: typer.Context,
    role: Annotated[str, typer.Option("--role", help=f"One of: {', '.join(ROLES)}.")],
    name: Annotated[str, typer.Option("--name", help="Who (a person) or what (a system) uses the token.")],
    library: Annotated[
        str | None, typer.Option("--library", help="The user's library (every role but operator has one).")
    ] = None,
) -> None:
    """Add a user and print its bearer token, alone on stdout (shown this once; kodex keeps only its hash)."""
    if role not in ROLES:
        raise typer.BadParameter(f"use one of {', '.join(ROLES)}", param_hint="--role")

    def body() -> None:
        work = invocation(ctx).workspace
        _, token = add_user(work.engine, work.master, library, role, name)
        sys.stdout.write(token + "\n")

    run_body(body)


@users_app.command("list")
def users_list(
    ctx: typer.Context,
    library: Annotated[str | None, typer.Option("--library", help="The library (default: the operators).")] = None,
) -> None:
    """The users of a library (or the operators), revoked ones too, with who issued each token. Tokens are never
    shown again. A dpo or director token the library's admin issued is flagged: those roles read personal data."""

    def body() -> None:
        work = invocation(ctx).workspace
        table = Table()
        for column in ("id", "role", "name", "created", "issued by", "revoked", "check"):
            table.add_column(column)
        found = list_users(work.engine, work.master, library)
        for user in found:
            table.add_row(
                user.id, user.role, user.name, f"{user.created_at:%Y-%m-%d %H:%M}", _issued_by(user),
                "yes" if user.revoked else "", "ADMIN-ISSUED " + user.role.upper() if user.flagged else "",
            )  # fmt: skip
        out.print(table, markup=False)
        flagged = [user for user in found if user.flagged and not user.revoked]
        if flagged:
            out.print(
                f"{len(flagged)} active dpo/director token(s) issued by the library's admin: they read personal "
                "data; confirm each with the library (revoke: kodex users revoke ID --library ...)",
                markup=False,
            )

    run_body(body)


def _issued_by(user: User) -> str:
    return _by(user.created_by_role, user.created_by)


def _by(role: str | None, user_id: str | None) -> str:
    if role is None:
        return "(not recorded)"
    return "command line" if role == "cli" else f"{role} {user_id}"


@users_app.command("revoke")
def users_revoke(
    ctx: typer.Context,
    user_id: Annotated[str, typer.Argument(help="The user's id (from `kodex users list`).")],
    library: Annotated[str | None, typer.Option("--library", help="The user's library (none: an operator).")] = None,
) -> None:
    """Revoke a user's token at once."""

    def body() -> None:
        work = invocation(ctx).workspace
        revoke_user(work.engine, library, user_id)
        out.print(f"user {user_id} revoked", markup=False)

    run_body(body)


# -- data-subject requests -----------------------------------------------------------------------------------


@requests_app.command("add")
def requests_add(
    ctx: typer.Context,
    library: LibraryArg,
    reader: Annotated[str, typer.Option("--reader", help="The reader's id (as in the records).")],
    kind: Annotated[str, typer.Option("--kind", help=f"One of: {', '.join(KINDS)}.")],
    received: Annotated[str | None, typer.Option("--received", help="Day received (default: today).")] = None,
    policy: PolicyOption = None,
) -> None:
    """Record a reader's request; print when it is due and what the rules decide about it today."""
    day = _day(received, "--received")

    def body() -> None:
        command = invocation(ctx, policy)
        work, ruleset = command.workspace, command.ruleset
        received_on = day or command.today(library)
        request, forecast = file_request(work.engine, ruleset, work.master, library, reader, kind, received_on)
        out.print(f"request {request.id}: {kind}, received {request.received_on}, due {request.due_on}", markup=False)
        for f in forecast:
            out.print(f"  {f.rule} ({f.cite}): {f.action} — {_said(f.status)}", markup=False)
        if not forecast:  # each rule's line says the rest
            out.print(outlook(forecast), markup=False)

    run_body(body)


@requests_app.command("due")
def requests_due(
    ctx: typer.Context,
    library: LibraryArg,
    within: Annotated[int, typer.Option("--within", min=0, help="Days ahead.")] = 7,
    today: Annotated[str | None, typer.Option("--today", help="Count from this day (default: today).")] = None,
) -> None:
    """Open requests overdue or due within --within days, most urgent first."""
    day = _day(today, "--today")

    def body() -> None:
        command = invocation(ctx)
        work = command.workspace
        counted = day or command.today(library)
        table = Table(title=f"requests due by {counted.isoformat()} + {within} days")
        for column in ("id", "reader", "kind", "received", "due", "", "waiting for"):
            table.add_column(column)
        for r in due_requests(work.engine, library, counted, within):
            table.add_row(
                r.id, r.reader or "", r.kind, str(r.received_on), str(r.due_on), "OVERDUE" if r.due_on < counted else "",
                f"instruction {r.instruction}" if r.instruction else "",
            )  # fmt: skip
        out.print(table)

    run_body(body)


def _said(status: str) -> str:
    return {
        "due": "the next nightly run carries it out",
        "blocked": "kept: an exception or a legal hold blocks it",
        "not_due": "not now: its other conditions do not hold (see `kodex explain`)",
    }.get(status, status)


# -- legal holds ---------------------------------------------------------------------------------------------


@holds_app.command("set")
def holds_set(
    ctx: typer.Context,
    library: LibraryArg,
    subject: Annotated[str, typer.Option("--subject", help="The reader's or camera recording's id.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (kept encrypted).")],
    until: Annotated[str | None, typer.Option("--until", help="Last day (default: until released).")] = None,
    recording: Annotated[bool, typer.Option("--recording", help="The subject is a camera recording.")] = False,
) -> None:
    """Put a legal hold on a reader or camera recording: nothing about it is erased while it lasts."""
    end = _day(until, "--until") if until else None

    def body() -> None:
        work = invocation(ctx).workspace
        kind = "camera_recording" if recording else "reader"
        set_hold(work.engine, work.master, library, kind, subject, reason, end)
        out.print(f"legal hold set on {kind.replace('_', ' ')} {subject} until {end or 'released'}", markup=False)

    run_body(body)


@holds_app.command("release")
def holds_release(
    ctx: typer.Context,
    library: LibraryArg,
    subject: Annotated[str, typer.Option("--subject", help="The reader's or camera recording's id.")],
    recording: Annotated[bool, typer.Option("--recording", help="The subject is a camera recording.")] = False,
) -> None:
    """Release kodex's legal hold; the subject is reviewed at the next run."""

    def body() -> None:
        work = invocation(ctx).workspace
        release_hold(work.engine, library, "camera_recording" if recording else "reader", subject)
        out.print(f"legal hold on {subject} released", markup=False)

    run_body(body)


# -- exceptions -----------------------------------------------------------------------------------------------


@exceptions_app.command("grant")
def exceptions_grant(
    ctx: typer.Context,
    library: LibraryArg,
    subject: Annotated[str, typer.Option("--subject", help="The reader's or camera recording's id.")],
    rule: Annotated[str, typer.Option("--rule", help="The rule suspended (its id in policies.yaml).")],
    reason: Annotated[str, typer.Option("--reason", help="Why.")],
    until: Annotated[str, typer.Option("--until", help="Last day it applies.")],
    granted_by: Annotated[str, typer.Option("--granted-by", help="Who grants it.")],
    role: Annotated[str, typer.Option("--role", help="Your authority (policies.yaml: exception_by).")] = "director",
    from_: Annotated[str | None, typer.Option("--from", help="First day (default: today).")] = None,
    exception_id: Annotated[str | None, typer.Option("--id", help="Its id (default: a new one).")] = None,
    policy: PolicyOption = None,
) -> None:
    """Grant an exception to a rule for one subject, within the authority the policy gives; logged."""
    first, last = _day(from_, "--from"), _given_day(until, "--until")

    def body() -> None:
        command = invocation(ctx, policy)
        work, ruleset = command.workspace, command.ruleset
        grant = {"id": exception_id, "subject": subject, "rule": rule, "reason": reason, "from": first, "until": last}
        actor = {"id": None, "role": role, "name": granted_by}
        stored = grant_exception(work.engine, ruleset, work.master, library, grant, actor, command.today(library))
        out.print(f"exception {stored['id']} granted: {rule} suspended for {subject} until {last}", markup=False)

    run_body(body)


@exceptions_app.command("list")
def exceptions_list(ctx: typer.Context, library: LibraryArg) -> None:
    """The library's exceptions, revoked ones too, as JSON Lines."""

    def body() -> None:
        work = invocation(ctx).workspace
        for row in list_exceptions(work.engine, work.master, library):
            sys.stdout.write(json.dumps(row, default=str, ensure_ascii=False) + "\n")

    run_body(body)


@exceptions_app.command("revoke")
def revoke_command(
    ctx: typer.Context,
    exception_id: Annotated[str, typer.Argument(help="The exception's id, as in the records (e.g. E-1).")],
    library: Annotated[str, typer.Option("--library", help="The exception's library.")],
    role: Annotated[
        str, typer.Option("--role", help="Your authority: a role the rule lets grant exceptions (policies.yaml).")
    ] = "director",
    as_of: Annotated[str | None, typer.Option("--as-of", help="Day it stops applying (default: today).")] = None,
    policy: Annotated[
        Path | None,
        typer.Option(
            "--policy",
            help="Policy file. Default: $KODEX_POLICY, else the config's `policy`, else the bundled policies.yaml.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Revoke an exception: it stops applying, the subject is reviewed at the next run, the decision log records it."""
    given = parse_as_of(as_of) if as_of is not None else None
    given_day = given.date() if isinstance(given, datetime) else given

    def body() -> None:
        command = invocation(ctx, policy)
        ruleset = command.ruleset
        command.library(library)
        work = command.workspace
        day = given_day or command.today(library)
        entry = revoke_exception(
            work.engine, work.master, library, exception_id, day,
            actor={"type": "user", "id": None, "role": role}, revision=ruleset.revision,
            authority=exception_authority(ruleset, library),
        )  # fmt: skip
        out.print(f"exception {exception_id} revoked as of {day}; logged as entry {entry['id']}", markup=False)

    run_body(body)


# -- proposals ---------------------------------------------------------------------------------------------------


@proposals_app.command("list")
def proposals_list(
    ctx: typer.Context,
    library: LibraryArg,
    status: Annotated[str, typer.Option("--status", help="open, accepted, rejected, resolved or all.")] = "open",
) -> None:
    """Proposals awaiting (or past) their deciding role's decision."""

    def body() -> None:
        work = invocation(ctx).workspace
        table = Table()
        for column in ("id", "reader", "rule", "action", "decided by", "status", "opened"):
            table.add_column(column)
        for p in list_proposals(work.engine, library, None if status == "all" else status):
            table.add_row(
                p.id, p.subject or "(anonymised)", p.rule, p.action, p.decided_by or "", p.status, p.opened_as_of
            )
        out.print(table)

    run_body(body)


def _decide(accept: bool) -> Any:
    def command(
        ctx: typer.Context,
        proposal_id: Annotated[str, typer.Argument(help="The proposal's id (from `kodex proposals list`).")],
        library: LibraryArg,
        reason: Annotated[str, typer.Option("--reason", help="Why (kept encrypted).")],
        role: Annotated[str, typer.Option("--role", help="Your role: the rule's decided_by.")] = "director",
        policy: PolicyOption = None,
    ) -> None:
        def body() -> None:
            command = invocation(ctx, policy)
            work, ruleset = command.workspace, command.ruleset
            decided = decide_proposal(
                work.engine, ruleset, work.master, library, proposal_id, accept=accept, reason=reason,
                actor={"type": "user", "id": None, "role": role}, as_of=command.today(library),
            )  # fmt: skip
            out.print(f"proposal {decided.id} {decided.status}; logged", markup=False)

        run_body(body)

    command.__doc__ = (
        "Accept a proposal: it is carried out (an exclusion blocks services for good) and logged."
        if accept
        else "Reject a proposal: nothing is done, it is logged and not proposed again."
    )
    return command


proposals_app.command("accept")(_decide(True))
proposals_app.command("reject")(_decide(False))


# -- a candidate policy -----------------------------------------------------------------------------------------


def policy_diff_command(
    ctx: typer.Context,
    candidate: Annotated[Path, typer.Argument(help="The candidate policy file.")],
    library: LibraryArg,
    as_of: Annotated[str | None, typer.Option("--as-of", help="Day to decide for (default: today).")] = None,
    limit: Annotated[int, typer.Option("--limit", min=0, help="Changes listed (all are counted).")] = 200,
) -> None:
    """Which decisions would change for the library's current readers and recordings if CANDIDATE were adopted."""
    day = _day(as_of, "--as-of")

    def body() -> None:
        command = invocation(ctx)
        work, active = command.workspace, command.ruleset
        proposed = load_ruleset(candidate)
        as_of_day = day or command.today(library)
        diff = policy_diff(work.engine, work.master, active, proposed, library, as_of_day, limit=limit)
        out.print(
            f"{library} as of {as_of_day}: {diff.changed_subjects} of {diff.subjects} subjects would be decided differently "
            f"(revision {diff.active_revision[:12]} → {diff.candidate_revision[:12]})",
            markup=False,
        )
        table = Table()
        for column in ("rule", "now", "with the candidate", "subjects"):
            table.add_column(column)
        for (rule, before, after), count in sorted(diff.counts.items()):
            table.add_row(rule, before, after, str(count))
        out.print(table)
        for change in diff.changes:
            out.print(
                f"  {change.subject_type} {change.subject}: {change.rule} {change.before} → {change.after}",
                markup=False,
            )

    run_body(body)
