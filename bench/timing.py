"""Timing shared by the benchmark scripts: the median wall time of repeated work."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

__all__ = ["median_seconds"]


def median_seconds(work: Callable[[], None], repeat: int) -> float:
    """Run `work` `repeat` times; the median of its wall times, in seconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
