"""The store: readers, loans, camera recordings, incidents, exceptions, runs and decisions (SQLAlchemy 2).

`Connection` and `Engine` are named here for the layers above, which type with them but write no SQL (the
repositories in store.repositories do); they are SQLAlchemy's own, imported only when asked for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine

__all__ = ["Connection", "Engine"]


def __getattr__(name: str) -> Any:
    if name in __all__:  # lazily: importing kodex.store.codec or .crypto does not load SQLAlchemy
        import sqlalchemy  # noqa: PLC0415 - loaded when asked for, not with every kodex.store module

        return getattr(sqlalchemy, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
