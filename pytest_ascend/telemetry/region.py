"""What the readings of one timed region say: each gauge's min, median and max, the energy
spent, whether the card throttled, and energy per token.

Energy comes from the card's own energy counter where it has one (NVML, RAPL), as the
counter's rise; otherwise from the power readings, integrated over time (trapezoids). A region
throttled when the platform named a throttle reason in it, or when the core clock fell by
THROTTLE_CLOCK_DROP or more from its highest reading in the region: an idle card clocks
down too, so only a fall while the region runs counts, and a rated-versus-current
comparison would not do.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import median
from typing import Optional, Sequence

from pytest_ascend.telemetry.reading import GAUGES, CardReading

THROTTLE_CLOCK_DROP = 0.2  # a fifth of the region's top clock lost


@dataclass(frozen=True)
class Throttle:
    kept: Optional[float]  # lowest / highest core clock in the region
    reasons: tuple[str, ...]

    @property
    def clock_drop(self) -> Optional[float]:
        return None if self.kept is None else 1 - self.kept

    @property
    def throttled(self) -> bool:
        return bool(self.reasons) or (self.kept is not None
                                      and self.kept <= 1 - THROTTLE_CLOCK_DROP)


def in_region(readings: Sequence[CardReading], start_s: float, end_s: float
              ) -> list[CardReading]:
    return [r for r in readings if start_s <= r.at_s <= end_s]


def gauge_summary(readings: Sequence[CardReading]) -> dict[str, Optional[dict]]:
    """{gauge: {"min", "median", "max"}} over the readings; None for a gauge never read."""
    summary: dict[str, Optional[dict]] = {}
    for name in GAUGES:
        values = [r.value(name) for r in readings if r.value(name) is not None]
        summary[name] = ({"min": min(values), "median": median(values), "max": max(values)}
                         if values else None)
    return summary


def energy_j(readings: Sequence[CardReading]) -> Optional[float]:
    """Joules spent across the readings: the energy counter's rise, else power integrated."""
    counted = [r for r in readings if r.energy_j is not None]
    if len(counted) >= 2:
        return counted[-1].energy_j - counted[0].energy_j  # type: ignore[operator]
    powered = [r for r in readings if r.power_w is not None]
    if len(powered) < 2:
        return None
    return sum((b.at_s - a.at_s) * (a.power_w + b.power_w) / 2  # type: ignore[operator]
               for a, b in zip(powered, powered[1:]))


def throttle(readings: Sequence[CardReading]) -> Throttle:
    clocks = [r.core_clock_mhz for r in readings if r.core_clock_mhz is not None]
    kept = min(clocks) / max(clocks) if clocks and max(clocks) > 0 else None
    reasons: list[str] = []
    for r in readings:
        for reason in r.throttle_reasons or ():
            if reason not in reasons:
                reasons.append(reason)
    return Throttle(kept, tuple(reasons))


def energy_per_token_j(power_w: Optional[float], tpot_ms: Optional[float],
                       batch_size: int = 1) -> Optional[float]:
    """Joules per decoded token: the card's power for one decode step, shared by the
    batch's sequences, each of which gains a token in that step."""
    if power_w is None or tpot_ms is None or batch_size < 1:
        return None
    return power_w * tpot_ms / 1e3 / batch_size


def region_report(readings: Sequence[CardReading], start_s: float, end_s: float) -> dict:
    """extra_info["telemetry"] of one card for the region: its gauges, energy and throttle,
    and how many readings they rest on."""
    inside = in_region(readings, start_s, end_s)
    found = throttle(inside)
    return {
        "samples": len(inside),
        "seconds": end_s - start_s,
        **gauge_summary(inside),
        "energy_j": energy_j(inside),
        "throttled": found.throttled,
        "clock_drop": found.clock_drop,
        "throttle_reasons": list(found.reasons),
    }
