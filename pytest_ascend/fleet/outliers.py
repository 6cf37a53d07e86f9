"""Which box is the odd one out: a robust rule on the fleet's own spread.

For one metric among the boxes of one comparison group (same device, model, dtype, smoke,
and CANN version unless asked otherwise), the fleet's centre is the median and its spread
the median absolute deviation (MAD). A box's modified z-score is 0.6745 (x - median) / MAD
(Iglewicz and Hoaglin's rule, whose 3.5 for a single comparison is raised to THRESHOLD for
a fleet's many; with MAD's 0.6745 the score reads as standard deviations of normal data).
A box is flagged when its score passes the threshold
in the metric's bad direction (lower throughput, higher latency) and its gap from the median
is at least `min_gap` of it: where every box agrees to the last digit (MAD 0), a gap of a
hair would otherwise be infinitely many MADs.

Against its own history, a box's newest value is held to the median and MAD of its earlier
runs by the same rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import median
from typing import Mapping, Optional, Sequence

# Iglewicz and Hoaglin's 3.5 is for one comparison. A fleet is 50 boxes x every benchmark and
# metric, thousands of comparisons, and at 3.5 a normal box passes it somewhere (a synthetic
# fleet of 50 quiet boxes did). At 5 the normal tail is ~3e-7 a comparison; a box 10% slower
# than a fleet whose runs agree within 2% still scores about 5 x 2.5.
THRESHOLD = 5.0
MIN_GAP = 0.05
MIN_BOXES = 3  # fewer boxes have no majority to stand against
MAD_SCALE = 0.6745


@dataclass(frozen=True)
class Flag:
    box: str
    benchmark: str
    metric: str
    value: float
    reference: float  # the fleet's median, or the box's own earlier median
    score: float  # modified z-score, signed: positive is worse
    against: str  # "the fleet" or "its own history"

    @property
    def gap(self) -> float:
        """How far from the reference, as a fraction of it, signed as the value moved."""
        return self.value / self.reference - 1 if self.reference else float("inf")

    def describe(self) -> str:
        return (f"{self.box}: {self.metric} of {self.benchmark} is {self.value:.4g}, "
                f"{self.gap:+.1%} from {self.against}'s median {self.reference:.4g} "
                f"(modified z {self.score:+.1f})")


def badness(value: float, centre: float, mad: float, higher_is_better: bool) -> float:
    """The modified z-score, signed so that positive is the bad direction; infinite for any
    gap where the spread is 0."""
    gap = (centre - value) if higher_is_better else (value - centre)
    if mad == 0:
        return 0.0 if gap == 0 else (float("inf") if gap > 0 else float("-inf"))
    return MAD_SCALE * gap / mad


def _outlier(box: str, value: float, reference: Sequence[float], *, benchmark: str,
             metric: str, higher_is_better: bool, threshold: float, min_gap: float,
             against: str) -> Optional[Flag]:
    centre = median(reference)
    mad = median(abs(v - centre) for v in reference)
    score = badness(value, centre, mad, higher_is_better)
    if score > threshold and centre and abs(value / centre - 1) >= min_gap:
        return Flag(box, benchmark, metric, value, centre, score, against)
    return None


def fleet_outliers(values: Mapping[str, float], *, benchmark: str, metric: str,
                   higher_is_better: bool, threshold: float = THRESHOLD,
                   min_gap: float = MIN_GAP) -> list[Flag]:
    """The boxes of `values` (box -> value) that stand out from the others, worst first."""
    if len(values) < MIN_BOXES:
        return []
    flags = [_outlier(box, value, list(values.values()), benchmark=benchmark, metric=metric,
                      higher_is_better=higher_is_better, threshold=threshold, min_gap=min_gap,
                      against="the fleet") for box, value in values.items()]
    return sorted((flag for flag in flags if flag is not None), key=lambda flag: -flag.score)


def history_outlier(box: str, earlier: Sequence[float], newest: float, *, benchmark: str,
                    metric: str, higher_is_better: bool, threshold: float = THRESHOLD,
                    min_gap: float = MIN_GAP) -> Optional[Flag]:
    """The box's newest value against its own earlier runs (MIN_BOXES of them at least)."""
    if len(earlier) < MIN_BOXES:
        return None
    return _outlier(box, newest, earlier, benchmark=benchmark, metric=metric,
                    higher_is_better=higher_is_better, threshold=threshold, min_gap=min_gap,
                    against="its own history")
