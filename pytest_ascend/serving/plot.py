"""The request-rate sweep as a picture: latency percentiles and goodput against offered rate,
with the SLO targets drawn in."""

from __future__ import annotations

from pathlib import Path

from pytest_ascend.serving.goodput import Sweep


def write_sweep_plot(sweep: Sweep, path: Path, title: str) -> Path:
    """Three panels (TTFT, TPOT, throughput) against the offered request rate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates = [p.rate for p in sweep.points]
    targets = dict(sweep.slo.targets)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for ax, metric, label in ((axes[0], "ttft", "TTFT (ms)"), (axes[1], "tpot", "TPOT (ms)")):
        for stat, style in (("median", "o-"), ("p90", "s--"), ("p99", "^-")):
            values = [p.summary.get(f"{stat}_{metric}_ms") for p in sweep.points]
            ax.plot(rates, [float("nan") if v is None else v for v in values], style,
                    label=stat.upper() if stat != "median" else "P50")
        if f"{metric}_ms" in targets:
            ax.axhline(targets[f"{metric}_ms"], color="red", linestyle=":",
                       label=f"SLO {targets[f'{metric}_ms']:g} ms")
        ax.set_xlabel("offered request rate (req/s)")
        ax.set_ylabel(label)
        ax.legend(fontsize=8)
    ax = axes[2]
    ax.plot(rates, rates, "k:", label="offered")
    ax.plot(rates, [p.summary.get("request_throughput") or 0 for p in sweep.points], "o-",
            label="completed")
    ax.plot(rates, [p.goodput or 0 for p in sweep.points], "s-", label="goodput (within SLO)")
    if sweep.saturation_rate:
        ax.axvline(sweep.saturation_rate, color="green", linestyle="--",
                   label=f"saturation {sweep.saturation_rate:g} req/s")
    ax.set_xlabel("offered request rate (req/s)")
    ax.set_ylabel("requests / s")
    ax.legend(fontsize=8)
    for ax in axes:
        ax.set_xscale("log", base=2)
        ax.set_xticks(rates)
        ax.set_xticklabels([f"{rate:g}" for rate in rates])
        ax.grid(True, alpha=0.3)
    fig.suptitle(f"{title} | SLO {sweep.slo.text()} | stopped: {sweep.stopped_because}",
                 fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
