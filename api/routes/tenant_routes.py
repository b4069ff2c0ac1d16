"""Onboarding (ZÍSKEJ, seed 000): the operator creates libraries, their admins and agreements; admins their users."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response

from kodex.api.auth import Principal, check_may_issue, for_library, for_service
from kodex.api.routes.common import PROBLEMS, ruleset, workspace
from kodex.api.schemas import (
    AgreementIn,
    AgreementOut,
    Created,
    Issuer,
    LibraryIn,
    LibraryOut,
    RecordedAgreementOut,
    UserIn,
    UserOut,
)
from kodex.services.tenants import (
    Agreement,
    LibraryInfo,
    agreement_history,
    library_info,
    list_libraries,
    onboard,
    record_agreement,
)
from kodex.services.users import User, add_user, list_users, revoke_user

router = APIRouter(tags=["libraries and users"], responses=PROBLEMS)


@router.post("/libraries", status_code=201, response_model=Created)
def create_library(
    body: LibraryIn, request: Request, caller: Annotated[Principal, Depends(for_service("libraries.create"))]
) -> Created:
    """Onboard a library the policy has rules for, with its first admin (the token is in the answer, once).

    No personal data is accepted for it until its data-processing agreement is recorded (here, or with PUT
    …/agreement).
    """
    work = workspace(request)
    agreement = Agreement(body.agreement.signed_on, body.agreement.reference) if body.agreement else None
    info = onboard(work.engine, ruleset(request), body.id, agreement, caller.actor)
    user, token = add_user(work.engine, work.master, body.id, "library_admin", body.admin_name, caller.actor)
    return Created(library=_library(info), admin=_user(user, token))


@router.get("/libraries", response_model=list[LibraryOut])
def libraries(request: Request, _: Annotated[Principal, Depends(for_service("libraries.list"))]) -> list[LibraryOut]:
    """Every library of the installation, with its agreement (null: it takes no personal data yet)."""
    return [_library(info) for info in list_libraries(workspace(request).engine)]


@router.get("/libraries/{library}", response_model=LibraryOut)
def library(
    library: str, request: Request, _: Annotated[Principal, Depends(for_library("libraries.read"))]
) -> LibraryOut:
    return _library(library_info(workspace(request).engine, library))


@router.put("/libraries/{library}/agreement", response_model=LibraryOut)
def agreement(
    library: str,
    body: AgreementIn,
    request: Request,
    caller: Annotated[Principal, Depends(for_library("libraries.agreement"))],
) -> LibraryOut:
    """Record the library's data-processing agreement (GDPR Art. 28): from now on it takes personal data.

    A new agreement replaces the one in force, which stays in the history (GET …/agreements); logged."""
    agreement = Agreement(body.signed_on, body.reference)
    return _library(record_agreement(workspace(request).engine, library, agreement, caller.actor))


@router.get("/libraries/{library}/agreements", response_model=list[RecordedAgreementOut])
def agreements(
    library: str, request: Request, _: Annotated[Principal, Depends(for_library("libraries.agreements"))]
) -> list[RecordedAgreementOut]:
    """Every data-processing agreement recorded for the library, newest (in force) first, with when and by whom."""
    return [
        RecordedAgreementOut(
            signed_on=a.signed_on, reference=a.reference, recorded_at=a.recorded_at, current=a.current,
            recorded_by=None if a.recorded_by_role is None else Issuer(id=a.recorded_by, role=a.recorded_by_role),
        )
        for a in agreement_history(workspace(request).engine, library)
    ]  # fmt: skip


@router.post("/libraries/{library}/users", status_code=201, response_model=UserOut)
def create_user(
    library: str, body: UserIn, request: Request, caller: Annotated[Principal, Depends(for_library("users.create"))]
) -> UserOut:
    """Issue a user of the library a token (in this answer only: kodex keeps its hash); logged (`user_added`).

    An operator may issue every role of a library, its admin every role but library_admin (README: who issues
    which roles). A dpo or director token issued by the admin is flagged in the operator's listing.
    """
    check_may_issue(caller, body.role)
    work = workspace(request)
    user, token = add_user(work.engine, work.master, library, body.role, body.name, caller.actor)
    return _user(user, token)


@router.get("/libraries/{library}/users", response_model=list[UserOut])
def users(library: str, request: Request, _: Annotated[Principal, Depends(for_library("users.list"))]) -> list[UserOut]:
    """The library's users, revoked ones too, with who issued each token; `flagged`: a dpo or director token
    issued by the library's admin."""
    work = workspace(request)
    return [_user(user) for user in list_users(work.engine, work.master, library)]


@router.delete("/libraries/{library}/users/{user_id}", status_code=204, response_class=Response)
def revoke(
    library: str,
    user_id: Annotated[str, Path(max_length=36)],
    request: Request,
    caller: Annotated[Principal, Depends(for_library("users.revoke"))],
) -> Response:
    """Revoke a user's token, at once (a role the caller may issue); logged (`user_revoked`)."""
    revoke_user(workspace(request).engine, library, user_id, caller.actor, lambda role: check_may_issue(caller, role))
    return Response(status_code=204)


def _library(info: LibraryInfo) -> LibraryOut:
    agreed = (
        AgreementOut(signed_on=info.agreement.signed_on, reference=info.agreement.reference) if info.agreement else None
    )
    return LibraryOut(
        id=info.id, name=info.name, time_zone=info.time_zone, agreement=agreed, onboarded_at=info.onboarded_at
    )


def _user(user: User, token: str | None = None) -> UserOut:
    return UserOut(
        id=user.id, library=user.library, role=user.role, name=user.name, created_at=user.created_at,
        revoked=user.revoked, created_by=_issuer(user), flagged=user.flagged, token=token,
    )  # fmt: skip


def _issuer(user: User) -> Issuer | None:
    if user.created_by_role is None:
        return None
    return Issuer(id=user.created_by, role=user.created_by_role)
