"""Failed tokens slowed: a token bucket per client address, kept in the process (each `kodex serve` worker its own).

An address may present FAILED_TOKENS_BURST unknown or revoked tokens at once; after that one more every
FAILED_TOKEN_INTERVAL seconds. While its bucket is empty, every request from that address is answered 429 with
Retry-After before its token is even looked at, so guessing gains nothing from the answers (a good token waits
too). A request without any token spends nothing. Other addresses are not affected. The address is the one the
server sees: behind a reverse proxy, configure uvicorn's forwarded-address handling or all clients share one.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["FAILED_TOKENS_BURST", "FAILED_TOKEN_INTERVAL", "TRACKED_ADDRESSES", "FailedTokens"]

FAILED_TOKENS_BURST = 10  # a person who mistypes, or a system with a stale token, fails a few times, not ten
FAILED_TOKEN_INTERVAL = 6.0  # seconds: ten guesses a minute at most, where a token has 256 bits
TRACKED_ADDRESSES = 10_000  # the buckets kept; the least recently failed address is forgotten first


@dataclass
class _Bucket:
    tokens: float
    at: float


class FailedTokens:
    """The buckets of failed tokens, by client address."""

    def __init__(
        self,
        burst: int = FAILED_TOKENS_BURST,
        interval: float = FAILED_TOKEN_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.burst, self.interval, self.clock = burst, interval, clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    def retry_after(self, address: str) -> int | None:
        """Seconds the address must wait before a request of it is looked at; None when it need not."""
        with self._lock:
            bucket = self._refilled(address)
            if bucket is None or bucket.tokens >= 1:
                return None
            return max(1, math.ceil((1 - bucket.tokens) * self.interval))

    def failed(self, address: str) -> None:
        """Spend one of the address's tries."""
        with self._lock:
            bucket = self._refilled(address) or _Bucket(float(self.burst), self.clock())
            bucket.tokens = max(0.0, bucket.tokens - 1)
            self._buckets[address] = bucket
            self._buckets.move_to_end(address)
            while len(self._buckets) > TRACKED_ADDRESSES:
                self._buckets.popitem(last=False)

    def _refilled(self, address: str) -> _Bucket | None:
        bucket = self._buckets.get(address)
        if bucket is None:
            return None
        now = self.clock()
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.at) / self.interval)
        bucket.at = now
        if bucket.tokens >= self.burst:  # full again: nothing to remember
            del self._buckets[address]
        return bucket
