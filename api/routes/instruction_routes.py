"""The instruction feed over HTTP: pull, outcomes, and where instructions are pushed (README, "Instructions")."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from kodex.api.auth import Principal, for_library
from kodex.api.routes.common import PROBLEMS, workspace
from kodex.api.schemas import WebhookIn, WebhookOut
from kodex.services.delivery import set_webhook

router = APIRouter(tags=["instructions to the library system"], responses=PROBLEMS)


# -- pull and outcomes ----------------------------------------------------------------------------------------------


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
    secret = set_webhook(work.engine, work.master, library, body.url)
    return WebhookOut(url=body.url, secret=secret)
