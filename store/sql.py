"""SQL constructs the store's statements share across SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean, ColumnElement, any_, bindparam
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.visitors import InternalTraversal

__all__ = ["one_of"]


class _OneOf(ColumnElement[bool]):
    """`column IN (…)` over a list bound at execution under one name.

    On PostgreSQL it is `column = ANY(:name)`, one array parameter: the statement's text is the same for every
    list, so the driver converts and the server plans it once, where an expanded IN of 500 values is a new
    statement each time (rendering and converting it cost more than running it). Elsewhere (SQLite) the list
    is expanded into one parameter per value.
    """

    inherit_cache = True
    type = Boolean()
    # a comparison, as IN is: without this, dialects with no boolean type (SQLite) compare it to 1, `(x IN (…)) = 1`,
    # which no index serves (each batch read the library's whole index range)
    _is_implicitly_boolean = True
    _traverse_internals = [  # noqa: RUF012 - SQLAlchemy's own declaration: what the statement cache keys on
        ("expanded", InternalTraversal.dp_clauseelement),
        ("array", InternalTraversal.dp_clauseelement),
    ]

    def __init__(self, column: Any, name: str) -> None:
        self.expanded = column.in_(bindparam(name, expanding=True))
        self.array = column == any_(bindparam(name, type_=ARRAY(column.type)))


@compiles(_OneOf)
def _expanded(element: _OneOf, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.expanded, **kw))


@compiles(_OneOf, "postgresql")
def _array(element: _OneOf, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.array, **kw))


def one_of(column: Any, name: str) -> ColumnElement[bool]:
    """`column` is one of the values of the list bound as `name` (give a list, not a tuple)."""
    return _OneOf(column, name)
