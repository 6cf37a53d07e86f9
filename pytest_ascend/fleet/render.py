"""The fleet's box x metric table, its JSON, and its heat map."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pytest_ascend.fleet.compare import FleetReport, flagged_boxes


def fleet_table(report: FleetReport) -> str:
    """Per group, a row per box and a column per metric: the box's worst gap from the
    fleet's median over the metric's benchmarks, `!` where a box was flagged in it."""
    out = []
    for group in report.groups:
        metrics = [m for m in report.metrics if any(k[1] == m for k in group.values)]
        flagged = {(f.box, f.metric) for f in group.flags}
        out.append(f"== {group.label}: {len(group.boxes)} box(es)"
                   + ("" if group.comparable else " (too few to compare: 3 at least)"))
        header = ["box", *metrics]
        rows = []
        for box in group.boxes:
            cells = []
            for metric in metrics:
                gap = group.worst_gap(box, metric)
                cells.append("-" if gap is None else
                             f"{gap:+.1%}{' !' if (box, metric) in flagged else ''}")
            rows.append([box, *cells])
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        for row in [header, *rows]:
            out.append("  " + "  ".join(v.rjust(w) if i else v.ljust(w)
                                        for i, (v, w) in enumerate(zip(row, widths))))
        out.append("")
    flags = report.flags
    out.append(f"{len(flagged_boxes(report))} box(es) flagged: "
               f"{', '.join(flagged_boxes(report)) or 'none'}")
    out += [f"FLAGGED {flag.describe()}" for flag in flags]
    out += [f"skipped {item.source}: {item.reason}" for item in report.skipped]
    return "\n".join(out)


def fleet_dict(report: FleetReport) -> dict[str, Any]:
    def flag(f: Any) -> dict:
        return {"box": f.box, "benchmark": f.benchmark, "metric": f.metric, "value": f.value,
                "reference": f.reference, "gap": f.gap, "score": f.score, "against": f.against}

    return {
        "flagged": flagged_boxes(report),
        "groups": [{
            "group": g.label, "boxes": g.boxes, "comparable": g.comparable,
            "values": [{"benchmark": b, "metric": m, "by_box": v}
                       for (b, m), v in g.values.items()],
            "flags": [flag(f) for f in g.flags],
            "history_flags": [flag(f) for f in g.history_flags],
        } for g in report.groups],
        "skipped": [{"path": s.source, "reason": s.reason} for s in report.skipped],
    }


def write_json(report: FleetReport, path: Path) -> None:
    path.write_text(json.dumps(fleet_dict(report), indent=1))


def write_heat_map(report: FleetReport, path: Path) -> None:
    """A panel per group: boxes down, metrics across, each cell the box's worst gap from the
    fleet's median (red the bad way), flagged cells marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pytest_ascend.history.gate import higher_is_better
    from pytest_ascend.telemetry.plot import save_figure

    groups = [g for g in report.groups if g.values]
    if not groups:
        raise ValueError("no box measured any metric: nothing to draw")
    fig, axes = plt.subplots(1, len(groups), squeeze=False,
                             figsize=(4 + 1.6 * len(report.metrics) * len(groups),
                                      2 + 0.25 * max(len(g.boxes) for g in groups)))
    for ax, group in zip(axes[0], groups):
        metrics = [m for m in report.metrics if any(k[1] == m for k in group.values)]
        flagged = {(f.box, f.metric) for f in group.flags}
        cells = [[(group.worst_gap(box, m) or 0.0) * (-1 if higher_is_better(m) else 1)
                  for m in metrics] for box in group.boxes]
        image = ax.imshow(cells, cmap="RdYlGn_r", vmin=-0.3, vmax=0.3, aspect="auto")
        ax.set_xticks(range(len(metrics)), metrics, rotation=35, ha="right", fontsize=7)
        ax.set_yticks(range(len(group.boxes)), group.boxes, fontsize=7)
        for row, box in enumerate(group.boxes):
            for column, metric in enumerate(metrics):
                if (box, metric) in flagged:
                    ax.text(column, row, "!", ha="center", va="center", fontsize=9,
                            fontweight="bold")
        ax.set_title(group.label[:60], fontsize=8)
        fig.colorbar(image, ax=ax, label="worse than the fleet's median (fraction)")
    save_figure(fig, path, dpi=100)
