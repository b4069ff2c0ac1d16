"""The instruction feed over HTTP: pull, outcomes, and where instructions are pushed (README, "Instructions")."""

from __future__ import annotations

from fastapi import APIRouter

from kodex.api.routes.common import PROBLEMS

router = APIRouter(tags=["instructions to the library system"], responses=PROBLEMS)


# -- pull and outcomes ----------------------------------------------------------------------------------------------


# -- the webhook ----------------------------------------------------------------------------------------------------
