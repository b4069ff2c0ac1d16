"""A query parameter the endpoint does not take is refused (422), as an unknown key in a body is.

Ignoring it would answer a misspelt filter (`?acton=anonymise`) with every entry, as if it had been applied. The
parameters an endpoint takes are read from its FastAPI dependant, the same source the OpenAPI schema is built from.
The refusal does not repeat the parameter's name: it may be a value.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.dependencies.models import Dependant

from kodex.errors import InvalidRequest

__all__ = ["only_declared_query"]

_KNOWN: dict[int, frozenset[str]] = {}


async def only_declared_query(request: Request) -> None:
    """An app-wide dependency: refuse a query parameter the matched route does not declare."""
    if not request.query_params:
        return
    route: Any = request.scope.get("route")
    if getattr(route, "dependant", None) is None:
        return
    known = _KNOWN.get(id(route))
    if known is None:
        known = _KNOWN[id(route)] = _query_names(route.dependant)
    if not set(request.query_params) <= known:
        raise InvalidRequest("a query parameter this endpoint does not take was sent (see the OpenAPI schema)")


def _query_names(dependant: Dependant) -> frozenset[str]:
    names: set[str] = set()
    stack = [dependant]
    while stack:
        current = stack.pop()
        names.update(field.alias for field in current.query_params)
        stack.extend(current.dependencies)
    return frozenset(names)
