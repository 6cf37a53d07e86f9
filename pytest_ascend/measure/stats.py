"""Order statistics for timings: the percentiles the serving tools report.

Kept free of numpy and torch so reports and the history tool can use them anywhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence


def percentile(values: Iterable[float], q: float) -> float:
    """The q-th percentile (0..100), interpolating linearly between order statistics.

    This is the definition numpy and torch use by default ("linear", Hyndman & Fan type 7),
    so a P95 here means what it means in vLLM's and SGLang's benchmark output.
    """
    ordered = sorted(values)
    if not ordered:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile q={q} is outside 0..100")
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Iterable[float]) -> float:
    return percentile(values, 50)


@dataclass(frozen=True)
class Percentiles:
    """P50 / P95 / P99 of one metric, with the number of samples they summarise."""

    p50: float
    p95: float
    p99: float
    count: int

    @classmethod
    def of(cls, values: Sequence[float]) -> "Percentiles":
        if not values:
            nan = float("nan")
            return cls(nan, nan, nan, 0)
        return cls(
            percentile(values, 50), percentile(values, 95), percentile(values, 99), len(values)
        )
