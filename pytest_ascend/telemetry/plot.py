"""Telemetry over time as a picture: a panel per gauge that any card read, a line per card,
and each test's region shaded along the time axis (its short name where there is room), so
a hot stretch or a clock that fell is seen against the tests that ran then."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from pytest_ascend.telemetry.reading import CardReading

PANELS = (("power_w", "power (W)"), ("temperature_c", "temperature (C)"),
          ("core_clock_mhz", "core clock (MHz)"), ("utilization_pct", "utilisation (%)"),
          ("memory_used_mb", "memory used (MB)"))


def write_telemetry_plot(readings: Mapping[str, Sequence[CardReading]],
                         regions: Sequence[tuple[str, float, float]], start_s: float,
                         path: Path) -> Path:
    """`readings` per card, `regions` as (test, start, end), times on one clock that starts
    at `start_s`. Returns `path`; raises ValueError when no card read any gauge."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(gauge, label) for gauge, label in PANELS
              if any(r.value(gauge) is not None for rs in readings.values() for r in rs)]
    if not panels:
        raise ValueError("no card read any gauge: nothing to draw")
    fig, axes = plt.subplots(len(panels), 1, figsize=(14, 2.4 * len(panels) + 0.6),
                             sharex=True, squeeze=False)
    span = max((end - start_s for _, _, end in regions), default=1.0) or 1.0
    for (gauge, label), ax in zip(panels, axes[:, 0]):
        for card, series in readings.items():
            points = [(r.at_s - start_s, r.value(gauge)) for r in series
                      if r.value(gauge) is not None]
            if points:
                ax.plot(*zip(*points), linewidth=1, label=card)
        for index, (test, start, end) in enumerate(regions):
            ax.axvspan(start - start_s, end - start_s, color="C7",
                       alpha=0.10 if index % 2 else 0.22, linewidth=0)
        ax.set_ylabel(label)
    top = axes[0, 0]
    for test, start, end in regions:
        if (end - start) / span > 0.04:  # room for a name
            top.text((start + end) / 2 - start_s, 1.02, test.rsplit("::", 1)[-1][:28],
                     transform=top.get_xaxis_transform(), rotation=30, fontsize=7,
                     ha="left", va="bottom")
    top.legend(fontsize=8, loc="upper right")
    axes[-1, 0].set_xlabel("seconds since the first suite test")
    return save_figure(fig, path, dpi=100)


def save_figure(fig: Any, path: Path, dpi: int) -> Path:
    """Lay `fig` out, write it to `path` (its folder made), and free it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
