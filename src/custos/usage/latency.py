"""Latency buckets for metering: requests are counted per bucket, and percentiles estimated
from the counts. Bounds grow by 20% from 0.1 ms to about 50 s; the estimate for a
percentile is the mean latency of the requests in its bucket, so it is exact when they
all took the same time and otherwise within the bucket (at most 20% wide)."""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable

BOUNDS_MS: tuple[float, ...] = tuple(round(0.1 * 1.2**i, 6) for i in range(72))


def bucket_of(milliseconds: float) -> int:
    """0 for at most 0.1 ms, ..., len(BOUNDS_MS) for anything above the last bound."""
    return bisect_left(BOUNDS_MS, milliseconds)


def percentile(buckets: Iterable[tuple[int, int, float]], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..1) from (bucket, requests, summed milliseconds)."""
    ordered = sorted(b for b in buckets if b[1] > 0)
    total = sum(count for _, count, _ in ordered)
    if total == 0:
        return None
    rank = max(1, math.ceil(q * total))
    seen = 0
    for _, count, duration in ordered:
        seen += count
        if seen >= rank:
            return round(duration / count, 3)
    return None  # unreachable: rank <= total
