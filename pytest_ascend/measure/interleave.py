"""Ratios that hold on a busy machine: configurations measured round by round, alternating,
and judged on the median of the per-round ratios with a distribution-free interval.

Load on a shared machine moved the tiny model's absolute figures by 10-25x between tests
minutes apart, so a speedup taken from two tests was the ratio of two loads (batch 4 at
0.52x batch 1, then 8.63x). Measured in alternation, a round's figures share that round's
load and their ratio cancels most of it; the median of the rounds' ratios ignores the odd
disturbed round, and the interval around it says how sure a verdict is. A bound then fails
only when the whole interval is on the wrong side of it: noise makes a verdict
inconclusive (reported), never red.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Sequence

from pytest_ascend.measure.stats import median


def alternate(configurations: Mapping[str, Callable[[], Any]], rounds: int) -> dict[str, list]:
    """Call each configuration once per round and collect what it returns, rotating the
    order every round so that none is always first (a round's first call can pay for its
    predecessor's caches)."""
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    names = list(configurations)
    results: dict[str, list] = {name: [] for name in names}
    for round_index in range(rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            results[name].append(configurations[name]())
    return results


def median_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """A distribution-free confidence interval for the median: the k-th smallest and k-th
    largest values, k the largest with P(Binomial(n, 1/2) < k) <= (1 - confidence) / 2.
    With too few values for that confidence it is (min, max), whose coverage is
    1 - 2^(1-n): 75% for 3 rounds, 94% for 5, 98% for 7."""
    ordered = sorted(values)
    n = len(ordered)
    if n == 0:
        raise ValueError("no values")
    tail = (1 - confidence) / 2
    # (k-th smallest, k-th largest) covers the median with 1 - 2 P(X <= k - 1).
    k = 1
    while k < (n + 1) // 2 and _binomial_half_cdf(n, k) <= tail:
        k += 1
    return ordered[k - 1], ordered[n - k]


def _binomial_half_cdf(n: int, j: int) -> float:
    """P(X <= j) for X ~ Binomial(n, 1/2)."""
    return sum(math.comb(n, i) for i in range(j + 1)) / 2**n


@dataclass(frozen=True)
class RoundRatios:
    """One ratio per round (candidate over baseline, as the caller defines it)."""

    values: tuple[float, ...]
    confidence: float = 0.95

    @property
    def median(self) -> float:
        return median(self.values)

    @property
    def interval(self) -> tuple[float, float]:
        return median_interval(self.values, self.confidence)

    def clearly_below(self, bound: float) -> bool:
        """The whole interval is below `bound`: the measurement says so despite its noise."""
        return self.interval[1] < bound

    def clearly_above(self, bound: float) -> bool:
        return self.interval[0] > bound

    def describe(self) -> str:
        low, high = self.interval
        return (f"{self.median:.3g}x (interval {low:.3g}-{high:.3g}x over {len(self.values)} "
                f"rounds)")

    def report(self, name: str) -> dict[str, Any]:
        """extra_info entries: the median under `name`, its interval and every round."""
        low, high = self.interval
        return {name: self.median, f"{name}_low": low, f"{name}_high": high,
                f"{name}_rounds": list(self.values)}


def round_ratios(numerators: Sequence[float], denominators: Sequence[float]) -> RoundRatios:
    """Per-round numerator / denominator, the two measured in the same rounds."""
    if len(numerators) != len(denominators) or not numerators:
        raise ValueError("ratios need the same non-zero number of rounds on both sides")
    return RoundRatios(tuple(n / d for n, d in zip(numerators, denominators)))


def bound_problem(ratios: RoundRatios, what: str, *, at_least: Optional[float] = None,
                  at_most: Optional[float] = None) -> Optional[str]:
    """Why `ratios` break a bound, or None: only when the whole interval is past it."""
    if at_least is not None and ratios.clearly_below(at_least):
        return f"{what}: {ratios.describe()}, below {at_least:g}x"
    if at_most is not None and ratios.clearly_above(at_most):
        return f"{what}: {ratios.describe()}, above {at_most:g}x"
    return None
