"""The instruction feed over HTTP: pull, outcomes, and where instructions are pushed (README, "Instructions")."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request

from kodex.api.auth import Principal, for_library
from kodex.api.routes.common import PROBLEMS, ruleset, workspace
from kodex.api.schemas import InstructionOut, InstructionPage, OutcomeIn, WebhookIn, WebhookOut
from kodex.services.delivery import set_webhook
from kodex.services.instructions import MAX_PAGE, Instruction, get_instruction, list_instructions, record_outcome

router = APIRouter(tags=["instructions to the library system"], responses=PROBLEMS)

InstructionId = Annotated[str, Path(description="The instruction's id.", min_length=1, max_length=36)]
View = Literal["pending", "delivered", "done", "failed", "rejected", "not_carried_out", "overdue", "all"]


# -- pull and outcomes ----------------------------------------------------------------------------------------------


@router.get("/libraries/{library}/instructions", response_model=InstructionPage)
def instructions(
    library: str,
    request: Request,
    _: Annotated[Principal, Depends(for_library("instructions.read"))],
    state: Annotated[View, Query(description="Only these; `overdue`: pending or delivered past due_on.")] = "all",
    after: Annotated[
        int, Query(ge=0, le=2**62, description="Only instructions with a greater sequence (the cursor).")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> InstructionPage:
    """The library's instructions in sequence order, a page at a time: what its system must carry out.

    Page on with `after` = the last sequence read (`next_after`). The reader's id in the library system is the
    one personal value here (`subject_id`), for this library's integration only.
    """
    work = workspace(request)
    page = list_instructions(
        work.engine, ruleset(request), work.master, library, state=state, after=after, limit=limit + 1
    )
    more = len(page) > limit
    page = page[:limit]
    return InstructionPage(
        instructions=[_out(i) for i in page], next_after=page[-1].sequence if more and page else None
    )


@router.get("/libraries/{library}/instructions/{instruction_id}", response_model=InstructionOut)
def instruction(
    library: str,
    instruction_id: InstructionId,
    request: Request,
    _: Annotated[Principal, Depends(for_library("instructions.read"))],
) -> InstructionOut:
    work = workspace(request)
    return _out(get_instruction(work.engine, ruleset(request), work.master, library, instruction_id))


@router.post("/libraries/{library}/instructions/{instruction_id}/outcome", response_model=InstructionOut)
def outcome(
    library: str,
    instruction_id: InstructionId,
    body: OutcomeIn,
    request: Request,
    principal: Annotated[Principal, Depends(for_library("instructions.outcome"))],
) -> InstructionOut:
    """Say what the library system did: done, failed, or rejected (it cannot, with its code, e.g. has_debt).

    Idempotent: the same outcome again changes nothing. After done or rejected another outcome is 409. Each
    outcome is an entry in the decision log (ids and the code; the detail is kept, encrypted, for the dpo).
    """
    work = workspace(request)
    given, _changed = record_outcome(
        work.engine, ruleset(request), work.master, library, instruction_id, body.outcome, code=body.code,
        detail=body.detail, actor=principal.actor, by=principal.user.role,
    )  # fmt: skip
    return _out(given)


def _out(instruction: Instruction) -> InstructionOut:
    return InstructionOut.model_validate(instruction.as_json())


# -- the webhook ----------------------------------------------------------------------------------------------------


@router.put("/libraries/{library}/webhook", response_model=WebhookOut)
def put_webhook(
    library: str, body: WebhookIn, request: Request, _: Annotated[Principal, Depends(for_library("webhooks.set"))]
) -> WebhookOut:
    """Push the library's instructions to `url` (Standard Webhooks); the answer holds the new signing secret, once.

    Replaces any earlier endpoint and its secret (a disabled one too). Each instruction is POSTed as JSON with the
    headers webhook-id (the instruction's id, the same on every retry), webhook-timestamp (unix seconds) and
    webhook-signature (`v1,` + base64 of HMAC-SHA256 of `id.timestamp.body` under the secret's decoded bytes). Any
    2xx answer is delivered; 410 Gone disables the endpoint; other failures are retried for about 3 days.
    """
    work = workspace(request)
    secret = set_webhook(work.engine, work.master, library, body.url, private=work.settings.webhook_private_networks)
    return WebhookOut(url=body.url, secret=secret)
