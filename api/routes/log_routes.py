"""The decision log: query and export decisions; verify the log, prove an entry, checkpoints, the public keys."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import PlainTextResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from kodex.api.auth import Principal, for_library, for_service
from kodex.api.heavy import HeavySlot
from kodex.api.routes.common import PROBLEMS, workspace
from kodex.api.schemas import DecisionPage, Verification
from kodex.audit.entries import KINDS, now
from kodex.audit.keys import public_key_pem, public_keys
from kodex.audit.log import LogFilter, checkpoint, checkpoints, entries_text, latest_checkpoint, prove, query_text
from kodex.audit.verify import LogVerdict, verify_log
from kodex.errors import InvalidRequest
from kodex.rules.values import CalendarDate

router = APIRouter(tags=["decision log"], responses=PROBLEMS)

NO_NUL = r"^[^\x00]*$"  # as the schema states it; api.web refuses a NUL in a query before it gets here
Short = Annotated[str | None, Query(max_length=200, pattern=NO_NUL)]
MAX_NOTES = 1 << 20  # a file of checkpoints a witness appended to nightly for years: ~300 bytes a note


async def _filter(  # no I/O: on the event loop, not handed to a thread as a sync dependency is
    library: str,
    kind: Annotated[Literal[KINDS] | None, Query(description="Entry kind.")] = None,  # type: ignore[valid-type]
    rule: Short = None,
    action: Short = None,
    outcome: Short = None,
    subject: Annotated[str | None, Query(max_length=32, pattern=NO_NUL, description="A subject's pseudonym.")] = None,
    run: Annotated[str | None, Query(max_length=36, pattern=NO_NUL, description="A run's id.")] = None,
    from_: Annotated[CalendarDate | None, Query(alias="from", description="First as_of day, inclusive.")] = None,
    to: Annotated[CalendarDate | None, Query(description="Last as_of day, inclusive.")] = None,
) -> LogFilter:
    return LogFilter(library, kind, rule, action, outcome, subject, run, day_from=from_, day_to=to)


Filter = Annotated[LogFilter, Depends(_filter)]


@router.get(
    "/libraries/{library}/decisions",
    response_class=Response,
    responses={200: {"model": DecisionPage, "description": "One page of entries, in log order"}},
)
async def decisions(  # on the event loop: a page is one indexed query (api/web.py: where the work runs)
    library: str,
    where: Filter,
    request: Request,
    _: Annotated[Principal, Depends(for_library("decisions.read"))],
    after: Annotated[int, Query(ge=0, le=2**62, description="Continue after this position (next_after).")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    """Log entries in log order, by kind, rule, action, outcome, subject pseudonym, run and as_of days; paged."""
    page = query_text(workspace(request).engine, where, after=after, limit=limit)
    following = str(page[-1][0]) if len(page) == limit else "null"
    # the entries are stored as canonical JSON: passed on as they are, not parsed and written again
    body = '{"entries":[' + ",".join(text for _, text in page) + '],"next_after":' + following + "}"
    return Response(body, media_type="application/json")


@router.get(
    "/libraries/{library}/decisions/export",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-ndjson": {"schema": {"type": "string"}}}, "description": "JSON Lines"}},
)
def export(
    library: str,
    where: Filter,
    request: Request,
    _: Annotated[Principal, Depends(for_library("decisions.read"))],
    slot: HeavySlot,
) -> StreamingResponse:
    """The selected entries as JSON Lines, exactly as hashed (leaf hash = SHA-256(0x00 || line)), streamed."""
    lines: Iterator[str] = (line + "\n" for line in entries_text(workspace(request).engine, where))
    return StreamingResponse(lines, media_type="application/x-ndjson")


@router.get("/libraries/{library}/audit/verification", response_model=Verification)
def verification(
    library: str, request: Request, _: Annotated[Principal, Depends(for_library("audit.verify"))], slot: HeavySlot
) -> Verification:
    """Recompute the library's tree: every entry, checkpoint signature and consistency, cached subtree, the head."""
    return _verdict(library, verify_log(workspace(request).engine, library=library))


_NOTES = {
    "requestBody": {
        "required": True,
        "description": "One or more signed checkpoint notes of the library kept outside kodex "
        "(GET …/audit/checkpoint), one after another.",
        "content": {"text/plain": {"schema": {"type": "string", "maxLength": MAX_NOTES}}},
    }
}


@router.post("/libraries/{library}/audit/verification", response_model=Verification, openapi_extra=_NOTES)
async def verification_against_kept(
    library: str, request: Request, _: Annotated[Principal, Depends(for_library("audit.verify"))], slot: HeavySlot
) -> Verification:
    """As GET, and prove the log consistent with the checkpoints you kept (a log rolled back fails: `ok` false).

    Each note must be of this library's log and signed by the installation's key; `problems` says which is not.
    """
    body = await request.body()
    if not body.strip():
        raise InvalidRequest("send the checkpoint notes you kept (GET …/audit/checkpoint) as the body, text/plain")
    if len(body) > MAX_NOTES:
        raise InvalidRequest(f"send at most {MAX_NOTES} bytes of checkpoint notes")
    kept = body.decode("utf-8", errors="replace")  # a byte that is not UTF-8 fails the note, named in `problems`
    engine = workspace(request).engine
    return _verdict(library, await run_in_threadpool(lambda: verify_log(engine, library=library, kept=kept)))


def _verdict(library: str, verdicts: list[LogVerdict]) -> Verification:
    verdict = verdicts[0] if verdicts else None
    if verdict is None:
        return Verification(library=library, ok=True, entries=0, checkpoints=0, problems=[])
    return Verification(
        library=library, ok=verdict.ok, entries=verdict.entries, checkpoints=verdict.checkpoints,
        problems=verdict.problems, kept=verdict.kept,
    )  # fmt: skip


@router.get(
    "/libraries/{library}/audit/checkpoint",
    response_class=Response,  # not PlainTextResponse: that would document the Problem answers as text/plain too
    responses={
        200: {
            "content": {"text/plain": {"schema": {"type": "string"}}},
            "description": "The newest checkpoint as a C2SP signed note (c2sp.org/tlog-checkpoint)",
        }
    },
)
def latest(library: str, request: Request, _: Annotated[Principal, Depends(for_library("audit.verify"))]) -> Response:
    """The library's newest signed checkpoint as a signed note: keep it outside kodex, verify against it later."""
    with workspace(request).engine.connect() as connection:
        signed = latest_checkpoint(connection, library)
        public = public_keys(connection)[signed.key_id]
    return PlainTextResponse(signed.signed_note(public))


@router.get("/libraries/{library}/audit/proofs/{entry_id}", response_model=dict[str, Any])
def proof(
    library: str,
    entry_id: Annotated[str, Path(min_length=1, max_length=36)],
    request: Request,
    _: Annotated[Principal, Depends(for_library("audit.verify"))],
) -> dict[str, Any]:
    """A self-contained inclusion proof of one entry against a signed checkpoint (check it with `kodex audit verify-proof`)."""
    return prove(workspace(request).engine, entry_id, library)


@router.get("/libraries/{library}/audit/checkpoints", response_model=list[dict[str, Any]])
def signed(
    library: str, request: Request, _: Annotated[Principal, Depends(for_library("audit.verify"))]
) -> list[dict[str, Any]]:
    """The library's signed checkpoints (tree heads), oldest first."""
    with workspace(request).engine.connect() as connection:
        return [c.as_json() for c in checkpoints(connection, library)]


@router.post("/libraries/{library}/audit/checkpoints", status_code=201, response_model=dict[str, Any])
def sign(library: str, request: Request, _: Annotated[Principal, Depends(for_library("audit.sign"))]) -> dict[str, Any]:
    """Sign a checkpoint of the library's log as it is now."""
    work = workspace(request)
    with work.engine.begin() as connection:
        return checkpoint(connection, library, work.master, now()).as_json()


@router.get("/audit/public-keys", response_model=dict[str, str])
def keys(request: Request, _: Annotated[Principal, Depends(for_service("audit.keys"))]) -> dict[str, str]:
    """Every key that ever signed a checkpoint (retired ones too), by key id, as PEM: pin them to verify offline."""
    with workspace(request).engine.connect() as connection:
        return {key_id: public_key_pem(key) for key_id, key in public_keys(connection).items()}
