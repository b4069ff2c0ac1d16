"""Requests that cost CPU (policy validation and diff, imports, exports, verification): a few at a time.

Python runs one thread's bytecode at a time: eight policy validations in the worker threads at once took the
interpreter from everything else, and token checks, explanations and /health waited seconds. So each such endpoint
takes a `HeavySlot` parameter: it holds one of the process's `heavy_requests` slots (config key, default 2) from the
moment its caller is authorised until its answer, a streamed export included, is sent. More such requests wait
their turn, in order, without holding a thread. The slots are apart from the `web_threads` pool, so the other
endpoints always find a thread.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import anyio
from fastapi import Depends, Request

__all__ = ["HeavySlot", "HeavySlots"]


class HeavySlots:
    """At most `slots` heavy requests at once in this process."""

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self._limiter: anyio.CapacityLimiter | None = None

    @property
    def limiter(self) -> anyio.CapacityLimiter:
        if self._limiter is None:  # made on first use: anyio makes a limiter inside a running event loop only
            self._limiter = anyio.CapacityLimiter(self.slots)
        return self._limiter


async def _slot(request: Request) -> AsyncIterator[None]:
    slots: HeavySlots = request.app.state.heavy
    async with slots.limiter:
        yield


# A parameter after the caller's permission check: a refused caller never waits for, nor holds, a slot.
HeavySlot = Annotated[None, Depends(_slot, scope="request")]
