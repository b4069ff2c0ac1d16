"""Instructions to the library system as stored (the outbox, store.schema.instructions), and each library's webhook.

Instructions are written by store.repositories.writes (with the batch that applies their actions); here they are
read, paged by sequence, given their outcomes and delivery attempts, and found by subject for verification.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, Row, func, select, update

from kodex.store.schema import OPEN_INSTRUCTION, OPEN_INSTRUCTION_STATES, instructions, subject_requests, webhooks

__all__ = [
    "OPEN_STATES",
    "by_id",
    "count_by_state",
    "count_undeliverable",
    "disable_webhook",
    "done_of_subjects",
    "due_for_delivery",
    "finish_requests",
    "of_subject",
    "page",
    "record_attempt",
    "reopen_requests",
    "set_outcome",
    "set_webhook",
    "webhook_of",
    "webhooks_enabled",
]

OPEN_STATES = OPEN_INSTRUCTION_STATES  # not yet carried out, as far as kodex knows: these may fall overdue


def page(
    connection: Connection,
    library: str,
    *,
    states: Sequence[str] | None,
    overdue_before: date | None = None,
    after: int = 0,
    limit: int | None = None,
) -> list[Row[Any]]:
    """The library's instructions after sequence `after`, in sequence order; only `states` unless None.

    `overdue_before`: only open ones due before that day (the overdue view).
    """
    query = select(instructions).where(instructions.c.library == library, instructions.c.sequence > after)
    if states is not None:
        query = query.where(instructions.c.state.in_(list(states)))
        if set(states) <= set(OPEN_STATES):
            query = query.where(OPEN_INSTRUCTION)  # the partial index of the open ones serves it
    if overdue_before is not None:
        query = query.where(OPEN_INSTRUCTION, instructions.c.due_on < overdue_before)
    query = query.order_by(instructions.c.sequence)
    if limit is not None:
        query = query.limit(limit)
    return list(connection.execute(query).all())


def by_id(connection: Connection, library: str, instruction_id: str, *, lock: bool = False) -> Row[Any] | None:
    query = select(instructions).where(instructions.c.library == library, instructions.c.id == instruction_id)
    if lock:
        query = query.with_for_update()
    return connection.execute(query).first()


def of_subject(connection: Connection, library: str, key: bytes, actions: Sequence[str]) -> list[Row[Any]]:
    """The subject's instructions (by its keyed digest) for `actions`, in sequence order."""
    query = (
        select(instructions)
        .where(
            instructions.c.library == library,
            instructions.c.subject_key == key,
            instructions.c.action.in_(list(actions)),
        )
        .order_by(instructions.c.sequence)
    )
    return list(connection.execute(query).all())


def done_of_subjects(
    connection: Connection, library: str, keys: Sequence[bytes], actions: Sequence[str]
) -> list[Row[Any]]:
    """The library's instructions for `actions` marked done whose subject is one of `keys` (keyed digests), locked.

    One statement for a whole batch of an import (its verification), served by the (library, subject_key) index.
    """
    if not keys:
        return []
    query = (
        select(instructions)
        .where(
            instructions.c.library == library,
            instructions.c.subject_key.in_(list(set(keys))),
            instructions.c.action.in_(list(actions)),
            instructions.c.state == "done",
        )
        .order_by(instructions.c.sequence)
        .with_for_update()
    )
    return list(connection.execute(query).all())


def set_outcome(
    connection: Connection,
    instruction_id: str,
    *,
    state: str,
    code: str | None,
    detail: bytes | None,
    at: datetime,
    by: str,
) -> None:
    connection.execute(
        update(instructions)
        .where(instructions.c.id == instruction_id)
        .values(
            state=state, outcome_code=code, outcome_detail=detail, outcome_at=at, outcome_by=by, next_attempt_at=None
        )
    )


def record_attempt(
    connection: Connection,
    instruction_id: str,
    *,
    at: datetime,
    state: str | None = None,
    next_attempt_at: datetime | None = None,
    error: str | None = None,
) -> None:
    """One delivery tried at `at`: its state when it changes it, the next attempt (None: none), the failure."""
    values: dict[str, Any] = {
        "attempts": instructions.c.attempts + 1, "last_attempt_at": at, "next_attempt_at": next_attempt_at,
        "last_error": error,
    }  # fmt: skip
    if state is not None:
        values["state"] = state
    connection.execute(update(instructions).where(instructions.c.id == instruction_id).values(values))


def due_for_delivery(
    connection: Connection, library: str, now: datetime, limit: int, *, actions: Sequence[str] | None = None
) -> list[Row[Any]]:
    """Pending instructions whose next delivery attempt has come, oldest first; only `actions` unless None."""
    query = select(instructions).where(
        instructions.c.library == library,
        OPEN_INSTRUCTION,
        instructions.c.state == "pending",
        instructions.c.next_attempt_at.is_not(None),
        instructions.c.next_attempt_at <= now,
    )
    if actions is not None:
        query = query.where(instructions.c.action.in_(list(actions)))
    return list(connection.execute(query.order_by(instructions.c.sequence).limit(limit)).all())


def count_undeliverable(connection: Connection, library: str) -> int:
    """Pending instructions whose deliveries were given up on (tried, none scheduled): they wait for the pull."""
    query = select(func.count()).where(
        instructions.c.library == library,
        OPEN_INSTRUCTION,
        instructions.c.state == "pending",
        instructions.c.next_attempt_at.is_(None),
        instructions.c.attempts > 0,
    )
    return int(connection.execute(query).scalar_one())


def count_by_state(connection: Connection, library: str, today: date) -> dict[str, int]:
    """How many of the library's instructions are in each state, and how many are overdue (open, due before today)."""
    counts = {
        state: n
        for state, n in connection.execute(
            select(instructions.c.state, func.count())
            .where(instructions.c.library == library)
            .group_by(instructions.c.state)
        )
    }
    overdue = connection.execute(
        select(func.count()).where(
            instructions.c.library == library,
            OPEN_INSTRUCTION,
            instructions.c.due_on < today,
        )
    ).scalar_one()
    return {**counts, "overdue": int(overdue)}


def finish_requests(connection: Connection, instruction_id: str, at: datetime) -> int:
    """The data-subject requests that waited for this instruction are done; how many."""
    result = connection.execute(
        update(subject_requests)
        .where(subject_requests.c.instruction == instruction_id, subject_requests.c.status == "open")
        .values(status="done", done_at=at)
    )
    return int(result.rowcount or 0)


def reopen_requests(connection: Connection, instruction_id: str) -> int:
    """The data-subject requests this instruction had finished are open again (it was not carried out); how many."""
    result = connection.execute(
        update(subject_requests)
        .where(subject_requests.c.instruction == instruction_id, subject_requests.c.status == "done")
        .values(status="open", done_at=None)
    )
    return int(result.rowcount or 0)


# -- webhooks ------------------------------------------------------------------------------------------------------


def webhook_of(connection: Connection, library: str) -> Row[Any] | None:
    return connection.execute(select(webhooks).where(webhooks.c.library == library)).first()


def set_webhook(connection: Connection, library: str, url: str, secret: bytes, at: datetime) -> None:
    """The library's endpoint and its (wrapped) secret, replacing any earlier one, enabled; what waits unscheduled
    is due again."""
    connection.execute(webhooks.delete().where(webhooks.c.library == library))
    connection.execute(webhooks.insert().values(library=library, url=url, secret=secret, created_at=at))
    # what waits unscheduled (given up on, or since a 410) is tried again at the new endpoint
    connection.execute(
        update(instructions)
        .where(
            instructions.c.library == library,
            OPEN_INSTRUCTION,
            instructions.c.state == "pending",
            instructions.c.next_attempt_at.is_(None),
        )
        .values(next_attempt_at=at)
    )


def disable_webhook(connection: Connection, library: str, at: datetime) -> None:
    connection.execute(
        update(webhooks).where(webhooks.c.library == library, webhooks.c.disabled_at.is_(None)).values(disabled_at=at)
    )


def webhooks_enabled(connection: Connection) -> list[str]:
    """The libraries with an endpoint that is not disabled."""
    query = select(webhooks.c.library).where(webhooks.c.disabled_at.is_(None)).order_by(webhooks.c.library)
    return [str(library) for library in connection.execute(query).scalars()]
