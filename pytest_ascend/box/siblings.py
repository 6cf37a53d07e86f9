"""One slow card among eight: each member's figure against the median of the others.

A datasheet says what a card could do; the card's seven siblings in the same box, measured
the same way in the same minutes, say what it should do (SuperBench names outliers the same
way). The median of the others is the reference, so one bad card cannot drag its own
baseline down, and every figure here is higher-is-better (bandwidths, rates).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

from pytest_ascend.measure.stats import median


@dataclass(frozen=True)
class Straggler:
    member: str  # "card 3" or "card 0 -> card 5"
    metric: str
    value: float
    siblings_median: float

    @property
    def shortfall(self) -> float:
        """How far below its siblings, as a fraction of their median."""
        return 1 - self.value / self.siblings_median

    def describe(self) -> str:
        return (f"{self.member}: {self.metric} {self.value:.3g} is {self.shortfall:.0%} below "
                f"the median of its siblings ({self.siblings_median:.3g})")


def stragglers(figures: Mapping[str, Mapping[str, float]],
               tolerance: float) -> list[Straggler]:
    """Members whose figure of a metric is more than `tolerance` below the median of the
    other members' figures of that metric; a metric only one member has is not judged."""
    found = []
    metrics = sorted({metric for values in figures.values() for metric in values})
    for metric in metrics:
        having = {member: values[metric] for member, values in figures.items()
                  if metric in values}
        for member, value in having.items():
            others = [v for other, v in having.items() if other != member]
            if not others:
                continue
            reference = median(others)
            if reference > 0 and value < (1 - tolerance) * reference:
                found.append(Straggler(member, metric, value, reference))
    return found


def shared_device(cards: Sequence[Any]) -> Optional[str]:
    """Why `cards` cannot be judged against each other when they are stand-ins sharing one
    device (--ascend-devices=N on a host): their figures are one device's, moved by its load."""
    if len(cards) < 2 or not cards[0].platform.host_stand_ins:
        return None
    return (f"the {len(cards)} selected cards are stand-ins sharing one {cards[0].kind} "
            f"device: their figures differ only by the load on it, so no card or link is "
            f"judged against its siblings; select real cards on an accelerator")
