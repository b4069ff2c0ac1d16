"""The bodies the HTTP service takes and gives: strict (unknown keys refused), documented in the OpenAPI schema."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from kodex.rules.values import CalendarDate, CalendarDay, CalendarMoment, NoNul

__all__ = [
    "AgreementIn",
    "AgreementOut",
    "CameraRecordingIn",
    "Created",
    "DecisionPage",
    "ExceptionGrantIn",
    "ExceptionOut",
    "ExceptionRevokeIn",
    "Explanation",
    "HoldIn",
    "HoldOut",
    "ImportResult",
    "InstructionOut",
    "InstructionPage",
    "LibraryIn",
    "LibraryOut",
    "LibraryPolicy",
    "OutcomeIn",
    "PolicyDiffOut",
    "PolicyOut",
    "PolicyValidation",
    "Problem",
    "ProposalDecisionIn",
    "ProposalOut",
    "ReaderOut",
    "RequestAnswer",
    "RequestIn",
    "RequestOut",
    "RunIn",
    "RunOut",
    "UserIn",
    "UserOut",
    "Verification",
    "WebhookIn",
    "WebhookOut",
]  # fmt: skip

# Each pattern states in the schema what the validators enforce together: no NUL, and for Text something left
# after surrounding white space is stripped.
Text = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000), NoNul,
    Field(json_schema_extra={"pattern": r"^[^\x00]*[^\s\x00][^\x00]*$"}),
]  # fmt: skip
Id = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\s/]+$"), NoNul,
    Field(json_schema_extra={"pattern": r"^[^\s/\x00]+$"}),
]  # fmt: skip
NO_NUL = {"pattern": r"^[^\x00]*$"}
Role = Literal["operator", "library_admin", "dpo", "director", "auditor", "librarian", "scheduler"]
Json = dict[str, Any]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Problem(_Out):
    """Every error: what went wrong (`title`), what to fix (`detail`), and per line or field when there are several."""

    title: str
    detail: str
    errors: list[Json] = []


# -- libraries and users ---------------------------------------------------------------------------------------


class AgreementIn(_In):
    signed_on: CalendarDate
    reference: Text


class AgreementOut(_Out):
    signed_on: date
    reference: str


class RecordedAgreementOut(_Out):
    signed_on: date
    reference: str
    recorded_at: datetime | None  # null: recorded before kodex kept the history
    recorded_by: Issuer | None  # who recorded it (null: not recorded then)
    current: bool  # the agreement in force (the newest)


class LibraryIn(_In):
    id: Annotated[str, StringConstraints(min_length=1, max_length=64), NoNul]
    admin_name: Text  # the library's first admin (its token is in the answer, once)
    agreement: AgreementIn | None = None


class LibraryOut(_Out):
    id: str
    name: str
    time_zone: str
    agreement: AgreementOut | None  # null: the library takes no personal data yet
    onboarded_at: datetime | None


class UserIn(_In):
    role: Role
    name: Text


class Issuer(_Out):
    id: str | None  # the issuing user's id; null for the server's command line
    role: str  # that user's role, or "cli"


class UserOut(_Out):
    id: str
    library: str | None
    role: str
    name: str
    created_at: datetime
    revoked: bool
    created_by: Issuer | None = None  # who issued the token (null: issued before kodex recorded it)
    flagged: bool = False  # a dpo or director token issued by the library's admin: for the operator to check
    token: str | None = None  # only in the answer that creates the user: kodex keeps only its hash


class Created(_Out):
    library: LibraryOut
    admin: UserOut


# -- records -------------------------------------------------------------------------------------------------------


class ImportResult(_Out):
    added: dict[str, int]
    updated: dict[str, int]
    unchanged: dict[str, int]
    anonymised: int  # reader records left out: kodex has anonymised those readers
    gone: dict[str, int]  # recordings purged and loans erased earlier: not taken in again
    # per action: instructions the library system reported done, whose data this import still held (verification)
    not_carried_out: dict[str, int] = {}
    skipped: list[Json]  # with ?skip_invalid=true: each line left out, with its field and what is wrong


class CameraRecordingIn(_In):
    id: Id
    camera: Id
    start: CalendarMoment
    end: CalendarMoment
    location: Text


class ReaderOut(_Out):
    id: str
    state: str
    services_blocked: bool
    excluded_as_of: str | None
    next_review: date | None
    reviewed_as_of: str | None
    open_findings: list[Json]
    open_requests: list[Json]
    legal_hold: bool  # a hold the dpo keeps in kodex (the record may carry its own)
    legal_hold_until: date | None


class Explanation(_Out):
    reader: str
    library: str
    as_of: str
    policy_revision: str
    lines: list[str]  # in plain words, rule by rule
    decisions: list[Json]  # every rule's outcome with its reasons


# -- requests, holds, exceptions, proposals ---------------------------------------------------------------------


class RequestIn(_In):
    reader: Id
    kind: Literal["erasure", "loan_history_erasure"]
    received_on: CalendarDate | None = None  # default: today


class RequestOut(_Out):
    id: str
    reader: str | None  # null once the reader is anonymised
    kind: str
    received_on: date
    due_on: date  # one month after receipt (GDPR Art. 12(3))
    status: str  # open, done
    overdue: bool
    done_at: datetime | None
    instruction: str | None = None  # applied in kodex: the instruction to the library system it waits for (open)


class Forecast(_Out):
    rule: str
    action: str
    cite: str
    status: Literal["due", "blocked", "not_due"]
    reasons: list[Json]


class RequestAnswer(_Out):
    request: RequestOut
    will: list[Forecast]  # what the rules decide about it today
    next_run: datetime | None  # when the nightly run acts next (null: no scheduler in this process)
    summary: str


class HoldIn(_In):
    reason: Text
    until: CalendarDate | None = None  # null: until released


class HoldOut(_Out):
    subject_type: str
    subject: str
    until: date | None
    set_at: datetime


class ExceptionGrantIn(_In):
    id: Id | None = None
    subject: Id
    rule: Annotated[str, StringConstraints(min_length=1, max_length=200), NoNul, Field(json_schema_extra=NO_NUL)]
    reason: Text
    from_: CalendarDate | None = Field(None, alias="from")
    until: CalendarDate

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ExceptionOut(_Out):
    id: str
    subject: str
    rule: str
    role: str
    granted_by: str
    reason: str
    from_: date = Field(alias="from")
    until: date
    revoked_as_of: str | None

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ExceptionRevokeIn(_In):
    as_of: CalendarDate | None = None  # default: today


class ProposalOut(_Out):
    id: str
    reader: str | None
    rule: str
    action: str
    decided_by: str | None
    status: str
    opened_as_of: str
    closed_as_of: str | None


class ProposalDecisionIn(_In):
    accept: bool
    reason: Text


# -- runs, decisions, audit ---------------------------------------------------------------------------------------


class RunIn(_In):
    as_of: CalendarDay | None = None  # default: now
    dry_run: bool = False
    full: bool = False


class RunOut(_Out):
    id: str
    library: str
    as_of: str
    dry_run: bool
    full: bool
    policy_revision: str
    status: str  # started, running, finished, failed (summary.error names the error's type), interrupted
    started_at: datetime | None
    finished_at: datetime | None
    summary: Json | None


class DecisionPage(_Out):
    entries: list[Json]
    next_after: int | None  # pass as ?after= for the next page; null: this was the last


class Verification(_Out):
    library: str
    ok: bool
    entries: int
    checkpoints: int
    problems: list[str]
    kept: int = 0  # checkpoints kept outside kodex (POSTed) the log was proven consistent with


# -- policy ---------------------------------------------------------------------------------------------------------


class LibraryPolicy(_Out):
    id: str
    name: str
    regulation: str
    rules: list[Json]


class PolicyOut(_Out):
    revision: str
    libraries: list[LibraryPolicy]


class PolicyValidation(_Out):
    valid: bool
    revision: str | None
    problems: list[Json]  # each with line, column and message
    examples_failed: list[str]


class PolicyDiffOut(_Out):
    library: str
    as_of: str
    active_revision: str
    candidate_revision: str
    subjects: int
    changed_subjects: int
    counts: list[Json]
    changes: list[Json]


# -- the instruction feed (README, "Instructions to the library system") ------------------------------------------

InstructionState = Literal["pending", "delivered", "done", "failed", "rejected", "not_carried_out"]
Code = Annotated[
    str, StringConstraints(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:\-]+$"),
    Field(description="The library system's machine code, e.g. Koha's has_debt (logged: no free text)."),
]  # fmt: skip


class InstructionOutcome(_Out):
    code: str | None
    detail: str | None  # the library system's words, as it sent them
    at: datetime | None


class InstructionOut(_Out):
    """What the library system must do, for which of its own ids, by when, why (the rule and its article)."""

    id: str = Field(description="Stable; the webhook's `webhook-id` and the idempotency key.")
    sequence: int = Field(description="Increasing per library, in commit order: page with `after`.")
    library: str
    action: str = Field(description="anonymise, erase_guardian_data, erase_loan_history, purge, block_services, "
                        "lift_block, registration_expired, exclude")  # fmt: skip
    subject_type: Literal["reader", "camera_recording"]
    subject_id: str = Field(description="The library system's own id of the reader or recording.")
    decision_id: str = Field(description="The decision-log entry behind the instruction.")
    rule: str
    cite: str | None
    what: str = Field(description="What to do, in plain words.")
    created_at: datetime
    due_on: date | None = Field(description="Carry it out by this day (null: the policy sets no deadline).")
    state: InstructionState
    overdue: bool = Field(description="pending or delivered, and past due_on")
    attempts: int = Field(description="Deliveries tried (webhook or connector).")
    outcome: InstructionOutcome | None


class InstructionPage(_Out):
    instructions: list[InstructionOut]
    next_after: int | None = Field(description="Pass as `after` for the next page; null when this page is the last.")


class OutcomeIn(_In):
    outcome: Literal["done", "failed", "rejected"]
    code: Code | None = None
    detail: Text | None = None


# -- the instruction feed: the webhook ----------------------------------------------------------------------------


class WebhookIn(_In):
    url: Annotated[
        str,
        StringConstraints(min_length=1, max_length=2000),
        NoNul,
        Field(
            description="Where the library's instructions are POSTed: https:// (or http://), a host, a path.",
            examples=["https://ils.example.org/kodex/instructions"],
            json_schema_extra=NO_NUL,
        ),
    ]


class WebhookOut(_Out):
    url: str
    secret: str = Field(description="The signing secret (whsec_…), shown this once: kodex keeps it wrapped.")
