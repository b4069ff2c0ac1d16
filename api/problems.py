"""The Problem body every error answer carries: `title`, `detail` (what to fix), `errors` (per line or field).

Built here only, for the app's exception handlers and for the middleware that answers before the app does (the
door, the body limit). A body never repeats the values the request sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi.responses import JSONResponse

from kodex.errors import BrokenInvariant, failure_for

__all__ = ["answer", "problem"]


def problem(
    status: int,
    title: str,
    detail: str,
    errors: list[dict[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """A Problem answer; a 401 says how to authenticate (RFC 6750, 3)."""
    sent = dict(headers or {})
    if status == 401:
        sent.setdefault("WWW-Authenticate", "Bearer")
    return JSONResponse({"title": title, "detail": detail, "errors": errors or []}, status, headers=sent or None)


def answer(error: Exception, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """The Problem for a domain error, with the status kodex.errors maps it to."""
    failure = failure_for(error)
    if failure is None:
        raise BrokenInvariant(f"{type(error).__name__} has no mapping in kodex.errors.FAILURES")
    errors = [
        {key: getattr(p, key) for key in ("line", "column", "field", "message") if hasattr(p, key)}
        for p in getattr(error, "problems", [])
    ]
    return problem(failure.http_status, failure.title, str(error).split("\n")[0], errors, headers)
