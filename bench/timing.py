"""Timing shared by the benchmark scripts: the median wall time of repeated work."""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["cpu_model", "median_seconds"]


def median_seconds(work: Callable[[], None], repeat: int) -> float:
    """Run `work` `repeat` times; the median of its wall times, in seconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def cpu_model() -> str:
    """The CPU's model name, for the machine line every benchmark prints."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"
