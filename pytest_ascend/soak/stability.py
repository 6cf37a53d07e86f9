"""Stability over time: a card whose rate drifts from its own first minutes, and a card that
falls below its siblings.

Each card's rate is a series of (seconds since the go, rate) points, one per iteration. They
are cut into windows; a window's figure is the median of its points, so one slow iteration
(a neighbour's burst on a shared host) does not move it. The first window is the card's own
baseline: a later window more than `drift` away from it, either way, is a drift. Against its
siblings (the cards of the same chip), a card's median over the whole soak more than
`tolerance` below the median of the others' is flagged; the cards ran at the same time, so
a load that slows the box slows them all and cancels out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import median
from typing import Mapping, Optional, Sequence

MIN_POINTS = 3  # a window with fewer iterations says nothing
MAX_WINDOW_S = 60.0  # the first minute is the baseline of a long soak
WINDOWS_AT_LEAST = 6  # a short soak is cut finer, so that it has a baseline and a drift


def window_seconds(soak_s: float) -> float:
    """A minute, or a sixth of a soak shorter than six minutes."""
    return min(MAX_WINDOW_S, soak_s / WINDOWS_AT_LEAST)


def window_medians(points: Sequence[tuple[float, float]], window_s: float
                   ) -> list[tuple[float, float]]:
    """(window start, median rate) of every window with at least MIN_POINTS points, in order."""
    buckets: dict[int, list[float]] = {}
    for at_s, rate in points:
        buckets.setdefault(math.floor(at_s / window_s), []).append(rate)
    return [(index * window_s, median(rates)) for index, rates in sorted(buckets.items())
            if len(rates) >= MIN_POINTS]


@dataclass
class CardStability:
    card: int
    median_rate: Optional[float]
    baseline: Optional[float]  # the first window's median
    worst_drift: Optional[float]  # the later window furthest from the baseline, as a fraction
    worst_window_s: Optional[float]  # where that window starts
    below_siblings: Optional[float]  # fraction below the siblings' median (negative: above)
    flags: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def judge_stability(series: Mapping[int, Sequence[tuple[float, float]]],
                    chips: Mapping[int, str], *, window_s: float, drift: float,
                    tolerance: float, what: str = "rate") -> dict[int, CardStability]:
    """Each card's stability verdict; `what` names the rate in the flags."""
    verdicts = {}
    medians = {card: median([rate for _, rate in points]) if points else None
               for card, points in series.items()}
    for card, points in series.items():
        verdict = CardStability(card, medians[card], None, None, None, None)
        windows = window_medians(points, window_s)
        if len(windows) < 2:
            verdict.notes.append(f"drift not judged: {len(windows)} window(s) of {window_s:.3g} s "
                                 f"with {MIN_POINTS}+ iterations (needs 2)")
        else:
            verdict.baseline = baseline = windows[0][1]
            start, worst = max(((start, rate / baseline - 1) for start, rate in windows[1:]),
                               key=lambda pair: abs(pair[1]))
            verdict.worst_drift, verdict.worst_window_s = worst, start
            if abs(worst) > drift:
                verdict.flags.append(
                    f"{what} drifted {worst:+.1%} from its first {window_s:.3g} s "
                    f"({baseline:.4g} -> {baseline * (1 + worst):.4g} at {start:.3g} s; "
                    f"allowed {drift:.0%})")
        siblings = [medians[other] for other in series if other != card
                    and chips.get(other) == chips.get(card) and medians[other] is not None]
        if siblings and medians[card] is not None:
            theirs = median(siblings)
            verdict.below_siblings = 1 - medians[card] / theirs
            if verdict.below_siblings > tolerance:
                verdict.flags.append(
                    f"{what} {medians[card]:.4g} is {verdict.below_siblings:.1%} below its "
                    f"siblings' median {theirs:.4g} (allowed {tolerance:.0%})")
        verdicts[card] = verdict
    return verdicts
