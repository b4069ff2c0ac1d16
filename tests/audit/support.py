"""What the decision-log tests share: going around the append-only triggers, as an attacker with the database would."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, text

from kodex.store.database import is_postgresql
from kodex.store.schema import LOG_TABLES


@contextmanager
def around_the_triggers(engine: Engine) -> Iterator[Connection]:
    """A transaction on the log's tables with the append-only triggers out of the way."""
    with engine.begin() as connection:
        for table in LOG_TABLES:
            if is_postgresql(engine):
                connection.execute(text(f"ALTER TABLE {table.name} DISABLE TRIGGER USER"))
            else:
                connection.execute(text(f"DROP TRIGGER {table.name}_no_update"))
                connection.execute(text(f"DROP TRIGGER {table.name}_no_delete"))
        yield connection
        if is_postgresql(engine):
            for table in LOG_TABLES:
                connection.execute(text(f"ALTER TABLE {table.name} ENABLE TRIGGER USER"))
