"""Records: bulk import (the record contract, as the CLI reads it), reader lookup, explain, the Art. 15 copy, cameras."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from kodex.api.auth import Principal, for_library
from kodex.api.heavy import HeavySlot
from kodex.api.routes.common import PROBLEMS, ruleset, today, workspace
from kodex.api.schemas import CameraRecordingIn, Explanation, ImportResult, ReaderOut
from kodex.errors import InvalidRequest
from kodex.rules.values import CalendarDay
from kodex.services.access_copy import access_copy
from kodex.services.importing import ImportSummary, import_records
from kodex.services.inquiry import explain_stored, reader_status

router = APIRouter(tags=["records"], responses=PROBLEMS)

ReaderId = Annotated[str, Path(description="The reader's id (as in the records).", min_length=1, max_length=200)]
_NDJSON = {
    "requestBody": {
        "required": True,
        "description": "Records as JSON Lines (the record contract of `kodex import`), one record a line, all of this "
        "library. A body with an invalid line imports nothing unless skip_invalid=true.",
        "content": {"application/x-ndjson": {"schema": {"type": "string"}}},
    }
}


@router.post("/libraries/{library}/records", response_model=ImportResult, openapi_extra=_NDJSON)
async def import_(
    library: str,
    request: Request,
    _: Annotated[Principal, Depends(for_library("records.import"))],
    slot: HeavySlot,
    skip_invalid: Annotated[bool, Query(description="Import the valid lines, report each invalid one.")] = False,
) -> ImportResult:
    """Import records (upsert by id), validated as `kodex import` validates them; all or nothing."""
    body = await request.body()
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest("the body is not UTF-8 text; send JSON Lines in UTF-8") from None
    lines = text.splitlines(keepends=True)
    if not any(line.strip() for line in lines):
        raise InvalidRequest("the body holds no records; send one JSON record a line")
    summary = await run_in_threadpool(_import, request, library, lines, skip_invalid)
    return _result(summary)


@router.post("/libraries/{library}/camera-recordings", status_code=201, response_model=ImportResult)
def register_recording(
    library: str,
    body: CameraRecordingIn,
    request: Request,
    _: Annotated[Principal, Depends(for_library("camera.register"))],
) -> ImportResult:
    """Register a camera recording (kept as the library's policy says, e.g. 7 days, then purged)."""
    record = {"type": "camera_recording", "library": library, **body.model_dump(mode="json"), "legal_hold": None}
    return _result(_import(request, library, [json.dumps(record, ensure_ascii=False)], False))


@router.get("/libraries/{library}/readers/{reader_id}", response_model=ReaderOut)
def reader(
    library: str, reader_id: ReaderId, request: Request, _: Annotated[Principal, Depends(for_library("readers.read"))]
) -> ReaderOut:
    """Where a reader stands: state, block, open findings and requests, kodex's hold. No personal data."""
    status = reader_status(workspace(request).engine, library, reader_id)
    return ReaderOut(
        id=status.id, state=status.state, services_blocked=status.services_blocked,
        excluded_as_of=status.excluded_as_of, next_review=status.next_review, reviewed_as_of=status.reviewed_as_of,
        open_findings=status.open_findings, open_requests=_plain(status.open_requests),
        legal_hold=status.kodex_hold, legal_hold_until=status.kodex_hold_until,
    )  # fmt: skip


@router.get("/libraries/{library}/readers/{reader_id}/explanation", response_model=Explanation)
async def explanation(  # on the event loop: one reader's few indexed queries (api/web.py: where the work runs)
    library: str,
    reader_id: ReaderId,
    request: Request,
    _: Annotated[Principal, Depends(for_library("readers.explain"))],
    as_of: Annotated[CalendarDay | None, Query(description="Day or moment (default: now).")] = None,
) -> Response:
    """Rule by rule, in plain words, what applies to the reader and why, with each rule's reasons."""
    work, rules = workspace(request), ruleset(request)
    when = as_of if as_of is not None else datetime.now(rules.library(library).zone)
    found = explain_stored(work.engine, rules, work.master, library, reader_id, when)
    body = {
        "reader": found.reader, "library": found.library, "as_of": found.as_of,
        "policy_revision": found.policy_revision, "lines": found.lines, "decisions": found.decisions,
    }  # fmt: skip
    # written out here, as the Explanation model documents it: validating the decisions again cost more than
    # deciding them (the schema tests check every answer against the model)
    return Response(json.dumps(body, default=str, ensure_ascii=False), media_type="application/json")


@router.get("/libraries/{library}/readers/{reader_id}/access-copy", response_model=dict[str, Any])
def access(
    library: str,
    reader_id: ReaderId,
    request: Request,
    caller: Annotated[Principal, Depends(for_library("readers.access_copy"))],
) -> dict[str, Any]:
    """Everything kodex holds about the reader, decrypted: the copy owed under GDPR Art. 15. Each read is logged
    (`access_copy_read`: who, the reader's pseudonym, when)."""
    work = workspace(request)
    copy: dict[str, Any] = _plain(access_copy(work.engine, work.master, library, reader_id, caller.actor))
    return copy


def _import(request: Request, library: str, lines: list[str], skip_invalid: bool) -> ImportSummary:
    work = workspace(request)
    return import_records(
        lambda: iter(lines), work.engine, ruleset(request), work.master, today(request, library),
        skip_invalid=skip_invalid, only_library=library, recordings=work.settings.recordings,
    )  # fmt: skip


def _result(summary: ImportSummary) -> ImportResult:
    return ImportResult(
        added=dict(summary.added), updated=dict(summary.updated), unchanged=dict(summary.unchanged),
        anonymised=summary.anonymised, gone=dict(summary.gone),
        not_carried_out=dict(summary.not_carried_out),
        skipped=[{"line": p.line, "field": p.field, "message": p.message} for p in summary.skipped],
    )  # fmt: skip


def _plain(value: Any) -> Any:
    """JSON values only (dates as ISO text), as the log and the CLI write them."""
    return json.loads(json.dumps(value, default=str, ensure_ascii=False))
