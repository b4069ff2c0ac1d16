"""Data-subject requests, legal holds, exceptions and proposals: what people decide about a subject."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from kodex.api.auth import Principal, for_library
from kodex.api.routes.common import PROBLEMS, next_run_of, ruleset, today, workspace
from kodex.api.schemas import (
    ExceptionGrantIn,
    ExceptionOut,
    ExceptionRevokeIn,
    Forecast,
    HoldIn,
    HoldOut,
    ProposalDecisionIn,
    ProposalOut,
    RequestAnswer,
    RequestIn,
    RequestOut,
)
from kodex.services.holds import release_hold, set_hold
from kodex.services.proposals import Proposal, decide_proposal, list_proposals
from kodex.services.requests import Request as SubjectRequest
from kodex.services.requests import due_requests, file_request, list_requests, outlook
from kodex.services.rule_exceptions import exception_authority, grant_exception, list_exceptions, revoke_exception

router = APIRouter(tags=["requests, holds, exceptions, proposals"], responses=PROBLEMS)

SubjectId = Annotated[str, Path(description="The reader's or recording's id.", min_length=1, max_length=200)]
_SUBJECTS = {"readers": "reader", "camera-recordings": "camera_recording"}


# -- data-subject requests ------------------------------------------------------------------------------------------


@router.post("/libraries/{library}/requests", status_code=201, response_model=RequestAnswer)
def file(
    library: str, body: RequestIn, request: Request, _: Annotated[Principal, Depends(for_library("requests.create"))]
) -> RequestAnswer:
    """Record a reader's request for erasure or loan-history erasure; the rules decide. Due one month after receipt."""
    work, rules = workspace(request), ruleset(request)
    day = today(request, library)
    filed, forecast = file_request(
        work.engine, rules, work.master, library, body.reader, body.kind, body.received_on or day
    )
    upcoming = next_run_of(request, library)
    return RequestAnswer(
        request=_request(filed, day),
        will=[
            Forecast(rule=f.rule, action=f.action, cite=f.cite, status=f.status, reasons=f.reasons) for f in forecast
        ],
        next_run=upcoming,
        summary=outlook(forecast),
    )


@router.get("/libraries/{library}/requests", response_model=list[RequestOut])
def requests(
    library: str,
    request: Request,
    _: Annotated[Principal, Depends(for_library("requests.list"))],
    status: Annotated[Literal["open", "done"] | None, Query()] = None,
    due_within: Annotated[
        int | None, Query(ge=0, le=366, description="Only open requests overdue or due within this many days.")
    ] = None,
) -> list[RequestOut]:
    """The library's requests, soonest due first; `due_within=7` gives those overdue or due within 7 days."""
    day = today(request, library)
    engine = workspace(request).engine
    found = (
        due_requests(engine, library, day, due_within)
        if due_within is not None
        else list_requests(engine, library, status)
    )
    return [_request(r, day) for r in found]


def _request(r: SubjectRequest, day: date) -> RequestOut:
    return RequestOut(
        id=r.id, reader=r.reader, kind=r.kind, received_on=r.received_on, due_on=r.due_on, status=r.status,
        overdue=r.status == "open" and r.due_on < day, done_at=r.done_at, instruction=r.instruction,
    )  # fmt: skip


# -- legal holds ------------------------------------------------------------------------------------------------------


@router.put("/libraries/{library}/{kind}/{subject}/legal-hold", response_model=HoldOut)
def hold(
    library: str,
    kind: Literal["readers", "camera-recordings"],
    subject: SubjectId,
    body: HoldIn,
    request: Request,
    _: Annotated[Principal, Depends(for_library("holds.set"))],
) -> HoldOut:
    """Put a legal hold on a reader or camera recording: nothing about it is erased or purged while it lasts."""
    work = workspace(request)
    kept = set_hold(work.engine, work.master, library, _SUBJECTS[kind], subject, body.reason, body.until)
    return HoldOut(subject_type=kept.subject_type, subject=kept.subject, until=kept.until, set_at=kept.set_at)


@router.delete("/libraries/{library}/{kind}/{subject}/legal-hold", status_code=204, response_class=Response)
def release(
    library: str,
    kind: Literal["readers", "camera-recordings"],
    subject: SubjectId,
    request: Request,
    _: Annotated[Principal, Depends(for_library("holds.release"))],
) -> Response:
    """Release kodex's hold; the subject is reviewed at the next run."""
    release_hold(workspace(request).engine, library, _SUBJECTS[kind], subject)
    return Response(status_code=204)


# -- exceptions --------------------------------------------------------------------------------------------------------


@router.get("/libraries/{library}/exceptions", response_model=list[ExceptionOut])
def exceptions(
    library: str, request: Request, _: Annotated[Principal, Depends(for_library("exceptions.list"))]
) -> list[ExceptionOut]:
    """Every exception of the library, revoked ones too."""
    return [
        ExceptionOut.model_validate(row)
        for row in list_exceptions(workspace(request).engine, workspace(request).master, library)
    ]


@router.post("/libraries/{library}/exceptions", status_code=201, response_model=ExceptionOut)
def grant(
    library: str,
    body: ExceptionGrantIn,
    request: Request,
    principal: Annotated[Principal, Depends(for_library("exceptions.grant"))],
) -> ExceptionOut:
    """Grant an exception to a rule for one subject, within the authority and limits the policy gives; logged."""
    work = workspace(request)
    wanted = {
        "id": body.id,
        "subject": body.subject,
        "rule": body.rule,
        "reason": body.reason,
        "from": body.from_,
        "until": body.until,
    }
    actor = {**principal.actor, "name": principal.user.name}
    stored = grant_exception(
        work.engine, ruleset(request), work.master, library, wanted, actor, today(request, library)
    )
    return ExceptionOut.model_validate(stored)


@router.post("/libraries/{library}/exceptions/{exception_id}/revocation", response_model=ExceptionOut)
def revoke(
    library: str,
    exception_id: Annotated[str, Path(min_length=1, max_length=200)],
    body: ExceptionRevokeIn,
    request: Request,
    principal: Annotated[Principal, Depends(for_library("exceptions.revoke"))],
) -> ExceptionOut:
    """Revoke an exception: it stops applying, the subject is reviewed at the next run; logged."""
    work, rules = workspace(request), ruleset(request)
    revoke_exception(
        work.engine, work.master, library, exception_id, body.as_of or today(request, library),
        actor=principal.actor, revision=rules.revision, authority=exception_authority(rules, library),
    )  # fmt: skip
    return ExceptionOut.model_validate(list_exceptions(work.engine, work.master, library, exception_id)[0])


# -- proposals --------------------------------------------------------------------------------------------------------


@router.get("/libraries/{library}/proposals", response_model=list[ProposalOut])
def proposals(
    library: str,
    request: Request,
    _: Annotated[Principal, Depends(for_library("proposals.list"))],
    status: Annotated[Literal["open", "accepted", "rejected", "resolved", "all"], Query()] = "open",
) -> list[ProposalOut]:
    """Proposals (e.g. exclusions) awaiting, or past, their deciding role's decision."""
    found = list_proposals(workspace(request).engine, library, None if status == "all" else status)
    return [_proposal(p) for p in found]


@router.post("/libraries/{library}/proposals/{proposal_id}/decision", response_model=ProposalOut)
def decide(
    library: str,
    proposal_id: Annotated[str, Path(min_length=1, max_length=36)],
    body: ProposalDecisionIn,
    request: Request,
    principal: Annotated[Principal, Depends(for_library("proposals.decide"))],
) -> ProposalOut:
    """Accept (carried out: an exclusion blocks services for good) or reject a proposal, with a reason; logged."""
    work = workspace(request)
    decided = decide_proposal(
        work.engine, ruleset(request), work.master, library, proposal_id, accept=body.accept, reason=body.reason,
        actor=principal.actor, as_of=today(request, library),
    )  # fmt: skip
    return _proposal(decided)


def _proposal(p: Proposal) -> ProposalOut:
    return ProposalOut(
        id=p.id, reader=p.subject, rule=p.rule, action=p.action, decided_by=p.decided_by, status=p.status,
        opened_as_of=p.opened_as_of, closed_as_of=p.closed_as_of,
    )  # fmt: skip
