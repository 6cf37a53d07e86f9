"""A card's soak over time as a picture: its rates (decode tokens/s, matmul TFLOP/s), one
point per iteration, above the telemetry gauges the card read, on one time axis from the go."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from pytest_ascend.telemetry.plot import PANELS, save_figure
from pytest_ascend.telemetry.reading import CardReading

RATE_PANELS = (("decode", "decode tokens/s", 1.0), ("matmul", "matmul TFLOP/s", 1e-12))


def write_card_plot(card: Any, readings: Sequence[CardReading], go_perf: float,
                    path: Path) -> Path:
    """`card` a runner.CardSoak, `readings` its telemetry on the perf_counter clock that
    started at `go_perf`. Raises ValueError when there is nothing to draw."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates = [(name, label, scale) for name, label, scale in RATE_PANELS
             if card.points.get(name)]
    gauges = [(gauge, label) for gauge, label in PANELS
              if any(r.value(gauge) is not None and r.at_s >= go_perf for r in readings)]
    if not rates and not gauges:
        raise ValueError("no iteration finished and no gauge was read")
    count = len(rates) + len(gauges)
    fig, axes = plt.subplots(count, 1, figsize=(12, 2.2 * count + 0.8), sharex=True,
                             squeeze=False)
    panels = iter(axes[:, 0])
    for index, (name, label, scale) in enumerate(rates):
        ax = next(panels)
        times, values = zip(*card.points[name])
        ax.plot(times, [v * scale for v in values], ".", markersize=3, color="C0")
        stability = card.stability  # judged on the first rate drawn: its baseline
        if index == 0 and stability is not None and stability.baseline:
            ax.axhline(stability.baseline * scale, color="C2", linewidth=0.8,
                       label="first window's median")
            ax.legend(fontsize=7, loc="lower right")
        ax.set_ylabel(label)
    for gauge, label in gauges:
        ax = next(panels)
        points = [(r.at_s - go_perf, r.value(gauge)) for r in readings
                  if r.value(gauge) is not None and r.at_s >= go_perf]
        ax.plot(*zip(*points), linewidth=1, color="C1")
        ax.set_ylabel(label)
    verdict = "; ".join(card.stability.flags) if card.stability and card.stability.flags \
        else "steady"
    axes[0, 0].set_title(f"card {card.card} ({card.name}): {card.iterations} iterations; "
                         f"{verdict}"[:150], fontsize=9)
    axes[-1, 0].set_xlabel("seconds since the soak's start")
    return save_figure(fig, path, dpi=90)
