"""Renderings of a History: a console table, markdown (for a nightly job to post), JSON,
a PNG plot and a self-contained HTML page."""

from __future__ import annotations

import base64
import html
import io
import json
import math
from pathlib import Path
from typing import Any, Optional, Sequence

from pytest_ascend.history.explain import explain, explanation_lines
from pytest_ascend.history.gate import Comparison, ContextHistory, GroupStats, History


def _scale(metric: str) -> tuple[float, str]:
    """pytest-benchmark stores time in seconds; it is shown in milliseconds."""
    return (1e3, "time (ms)") if metric == "time" else (1.0, metric)


def _cell(stats: Optional[GroupStats], metric: str, comparison: Optional[Comparison]) -> str:
    if stats is None:
        return "-"
    factor, _ = _scale(metric)
    text = _fmt(stats.median * factor)
    if stats.interval is not None:
        text += f" [{_fmt(stats.interval[0] * factor)}, {_fmt(stats.interval[1] * factor)}]"
    elif len(stats.samples) > 1:  # half the interquartile range
        text += f" ±{_fmt((stats.q3 - stats.q1) * factor / 2)}"
    if comparison is not None:
        text += f" {comparison.change:+.1%}"
        if comparison.verdict == "not gated":
            text += f" (not gated: {comparison.not_gated_because})"
        elif comparison.verdict != "same":
            text += f" {comparison.verdict.upper()} ({comparison.reason()})"
    return text


def _fmt(value: float) -> str:
    if value == 0 or math.isnan(value):
        return f"{value:g}"
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"


def _rows(ctx: ContextHistory) -> list[tuple[str, str, list[str]]]:
    found = {(c.benchmark, c.metric, c.group): c for c in ctx.comparisons}
    rows = []
    for (name, metric), per_group in ctx.stats.items():
        cells = [_cell(per_group.get(g), metric, found.get((name, metric, g))) for g in ctx.groups]
        rows.append((name, _scale(metric)[1], cells))
    return rows


def _group_header(ctx: ContextHistory) -> list[str]:
    return [f"{g} ({len(ctx.runs[g])} run{'s' if len(ctx.runs[g]) != 1 else ''})"
            for g in ctx.groups]


TABLE_WIDTH = 120  # the terminal table's lines, at most: details go to --format json, --html


def render_table(history: History, set_aside: Sequence[str] = ()) -> str:
    """Per context, one table per benchmark: a row per metric, a column per group, as many
    of the newest groups as fit TABLE_WIDTH (the older ones are named, and are in
    --format json and --html). Why a change is not gated is said once, in a numbered note."""
    out: list[str] = []
    notes: dict[str, int] = {}
    for ctx in history.contexts:
        out.append(f"== {ctx.label()} | grouped by {history.group_by}, oldest first")
        found = {(c.benchmark, c.metric, c.group): c for c in ctx.comparisons}
        rows = [(name, _scale(metric)[1],
                 [_terse_cell(per_group.get(g), metric, found.get((name, metric, g)), notes)
                  for g in ctx.groups])
                for (name, metric), per_group in ctx.stats.items()]
        shown = _newest_that_fit(ctx, rows)
        if shown < len(ctx.groups):
            older = ctx.groups[:len(ctx.groups) - shown]
            out.append(f"   {len(older)} older group(s) not shown here ({older[0]} .. "
                       f"{older[-1]}): --format json or --html")
        by_benchmark: dict = {}
        for name, metric, cells in rows:
            by_benchmark.setdefault(name, []).append([metric, *cells[len(cells) - shown:]])
        header = ["metric", *_group_header(ctx)[len(ctx.groups) - shown:]]
        for name, table in by_benchmark.items():
            widths = [max(len(r[i]) for r in [header, *table]) for i in range(len(header))]
            out.append(f"\n{name}")
            for row in [header, *table]:
                out.append("  " + "  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())
        out.append("")
    out += [f"[{number}] {reason}" for reason, number in notes.items()]
    out += _summary_lines(history, set_aside)
    return "\n".join(_fitted(line) for line in "\n".join(out).split("\n"))


def _terse_cell(stats: Optional[GroupStats], metric: str, comparison: Optional[Comparison],
                notes: dict) -> str:
    """A cell of the terminal table: the figure, its change and verdict, a note's number
    for why it is not gated (the regressions' reasons follow in the summary)."""
    if stats is None:
        return "-"
    text = _cell(stats, metric, None)
    if comparison is None:
        return text
    text += f" {comparison.change:+.1%}"
    if comparison.verdict == "not gated":
        number = notes.setdefault(f"not gated: {comparison.not_gated_because}", len(notes) + 1)
        return f"{text} [{number}]"
    return text if comparison.verdict == "same" else f"{text} {comparison.verdict.upper()}"


def _newest_that_fit(ctx: ContextHistory, rows: list) -> int:
    """How many of the newest groups' columns fit TABLE_WIDTH (two at least: a change and
    what it changed from)."""
    header = _group_header(ctx)
    metric_width = max([len("metric"), *(len(metric) for _, metric, _ in rows)])
    used, shown = 2 + metric_width, 0
    for index in range(len(ctx.groups) - 1, -1, -1):
        width = max([len(header[index]), *(len(cells[index]) for _, _, cells in rows)]) + 2
        if used + width > TABLE_WIDTH and shown >= 2:
            break
        used, shown = used + width, shown + 1
    return shown


def _fitted(line: str) -> str:
    """A line of at most TABLE_WIDTH characters: a longer one (a summary line naming many
    facts) is wrapped, its continuation indented."""
    import textwrap

    if len(line) <= TABLE_WIDTH:
        return line
    return "\n".join(textwrap.wrap(line, TABLE_WIDTH, subsequent_indent="    ",
                                    break_long_words=True, break_on_hyphens=False))


def render_markdown(history: History, set_aside: Sequence[str] = ()) -> str:
    out = []
    for ctx in history.contexts:
        out.append(f"### {ctx.label()}\n\nGrouped by `{history.group_by}`, oldest first.\n")
        header = ["benchmark", "metric", *_group_header(ctx)]
        out.append("| " + " | ".join(header) + " |")
        out.append("|" + "---|" * len(header))
        for name, metric, cells in _rows(ctx):
            out.append("| " + " | ".join([f"`{name}`", metric, *cells]) + " |")
        out.append("")
    out += [f"- {line}" for line in _summary_lines(history, set_aside)]
    return "\n".join(out)


def render_json(history: History, set_aside: Sequence[str] = ()) -> str:
    return json.dumps(history_dict(history, set_aside), indent=2, ensure_ascii=False)


def history_dict(history: History, set_aside: Sequence[str] = ()) -> dict[str, Any]:
    def stats(s: GroupStats) -> dict:
        return {"median": s.median, "q1": s.q1, "q3": s.q3, "noise": s.noise, "runs": s.runs,
                "samples": len(s.samples),
                "interval": None if s.interval is None else list(s.interval)}

    return {
        "group_by": history.group_by,
        "metrics": list(history.metrics),
        "contexts": [
            {
                "context": ctx.context,
                "groups": ctx.groups,
                "runs": {g: [r.source for r in runs] for g, runs in ctx.runs.items()},
                "benchmarks": [
                    {"benchmark": name, "metric": metric,
                     "groups": {g: stats(s) for g, s in per_group.items()}}
                    for (name, metric), per_group in ctx.stats.items()
                ],
                "comparisons": [
                    {"benchmark": c.benchmark, "metric": c.metric, "group": c.group,
                     "baseline": c.baseline, "change": _finite(c.change),
                     "cost_change": _finite(c.cost_change),
                     "threshold": _finite(c.threshold), "allowed": c.allowed,
                     "higher_is_better": c.higher_is_better, "verdict": c.verdict,
                     "not_gated_because": c.not_gated_because}
                    for c in ctx.comparisons
                ],
            }
            for ctx in history.contexts
        ],
        "regressions": len(history.regressions),
        "steps": [] if history.steps is None else [_step_dict(s) for s in history.steps.steps],
        "step_regressions": len(history.step_regressions),
        "drifts": [] if history.steps is None else [
            {"benchmark": d.benchmark, "metric": d.metric, "ratio": d.ratio,
             "steps": [s.index for s in d.steps]} for d in history.steps.drifts],
        "unknown_runs": history.unknown_runs,
        "explained": explain(history),
        "set_aside": list(set_aside),
        "skipped": [{"path": s.source, "reason": s.reason} for s in history.skipped],
    }


def _finite(value: float) -> Optional[float]:
    """JSON has no infinity (a change from a baseline of 0)."""
    return value if math.isfinite(value) else None


def _summary_lines(history: History, set_aside: Sequence[str] = ()) -> list[str]:
    lines = [f"{len(history.regressions)} regression(s)"]
    lines += [f"REGRESSION {c.benchmark} {c.metric}: {c.change:+.1%} in {c.group} vs "
              f"{c.baseline} ({c.reason()})"
              for c in history.regressions]
    if len(history.contexts) > 1:
        lines.append(f"{len(history.contexts)} contexts (device / model / dtype / smoke) are "
                     f"listed separately, never merged")
    lines += _step_lines(history)
    if history.unknown_runs:
        lines.append(f"{history.unknown_runs} run(s) do not say their {history.group_by}: "
                     f"grouped as `unknown`, never compared as a version; the steps judge "
                     f"them night by night")
    lines += explanation_lines(explain(history))
    lines += [f"set aside: {note}" for note in set_aside]
    return lines


def _step_lines(history: History) -> list[str]:
    report = history.steps
    if report is None or not report.series:
        return []
    lines = [f"{len(report.steps)} step(s) along the nights, {len(history.step_regressions)} "
             f"regression(s) ({report.series} series, {report.too_short} with too few runs to "
             f"fit)"]
    for step in report.steps:
        label = ("STEP REGRESSION" if step.regression else "step") if step.gated else \
            "step (smoke run: shown, not judged)"
        lines.append(f"{label} {_short(step.benchmark)}: {step.describe()}")
    lines += [f"drift {_short(d.benchmark)}: {d.describe()}" for d in report.drifts]
    return lines


def _step_dict(step: Any) -> dict:
    return {"context": step.context, "benchmark": step.benchmark, "metric": step.metric,
            "before": step.before.source, "before_datetime": step.before.datetime,
            "after": step.after.source, "after_datetime": step.after.datetime,
            "index": step.index, "ratio": step.ratio, "ratio_interval": [step.ratio_low,
                                                                          step.ratio_high],
            "regression": step.regression, "gated": step.gated,
            "changed": [{"key": k, "before": a, "after": b} for k, a, b in step.changed]}


def write_plot(history: History, path: Path) -> None:
    _write_new(path, plot_png(history))


def plot_png(history: History) -> bytes:
    """The history figure as PNG bytes."""
    import matplotlib.pyplot as plt

    fig = history_figure(history)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()


def history_figure(history: History) -> Any:
    """One panel per metric: each benchmark's median per group (oldest to newest, in its
    context) with interquartile bars (an accuracy's own interval instead); regressions
    marked with a red ring. Group names slant, and where two would still overlap, the later
    one is left out (every group stays in the table and the JSON)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [m for m in history.metrics
               if any(metric == m for ctx in history.contexts for (_, metric) in ctx.stats)]
    if not metrics:
        raise ValueError("nothing to plot: none of the metrics is in these runs")
    fig, axes = plt.subplots(len(metrics), 1, figsize=(10, 3.2 * len(metrics)), squeeze=False)
    bad = {(c.benchmark, c.metric, c.group) for c in history.regressions}
    names = sorted({name for ctx in history.contexts for (name, _) in ctx.stats})
    palette = plt.get_cmap("tab20")
    colour = {name: palette(i % 20) for i, name in enumerate(names)}  # same in every panel
    for ax, metric in zip(axes[:, 0], metrics):
        factor, label = _scale(metric)
        for ctx in history.contexts:
            for (name, m), per_group in ctx.stats.items():
                if m != metric:
                    continue
                xs = [g for g in ctx.groups if g in per_group]
                ys = [per_group[g].median * factor for g in xs]
                spans = [per_group[g].interval or (per_group[g].q1, per_group[g].q3)
                         for g in xs]  # an interval of its own where the figure has one
                low = [(per_group[g].median - span[0]) * factor for g, span in zip(xs, spans)]
                high = [(span[1] - per_group[g].median) * factor for g, span in zip(xs, spans)]
                ax.errorbar(xs, ys, yerr=[low, high], marker="o", capsize=3,
                            label=_short(name), linewidth=1, color=colour[name])
                for x, y in zip(xs, ys):
                    if (name, metric, x) in bad:
                        ax.plot([x], [y], "o", markersize=12, markerfacecolor="none",
                                markeredgecolor="red")
        ax.set_ylabel(label)
        ax.set_title(f"{label} by {history.group_by}")
        ax.grid(alpha=0.3)
        ax.tick_params(axis="x", labelrotation=30, labelsize=7)
        for tick in ax.get_xticklabels():
            tick.set_horizontalalignment("right")
    axes[0, 0].legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    for ax in axes[:, 0]:
        _thin_overlapping_labels(fig, ax)
    return fig


def _thin_overlapping_labels(fig: Any, ax: Any) -> None:
    """Hide each x label that overlaps the last one kept, left to right."""
    renderer = fig.canvas.get_renderer()
    kept = None
    for label in sorted(ax.get_xticklabels(), key=lambda t: t.get_window_extent(renderer).x0):
        if not label.get_text():
            continue
        box = label.get_window_extent(renderer)
        if kept is not None and box.overlaps(kept):
            label.set_visible(False)
        else:
            kept = box


def write_html(history: History, path: Path) -> None:
    """A self-contained page: the tables, and the plot embedded as a data URI."""
    try:
        png = base64.b64encode(plot_png(history)).decode()
        plot = f'<img alt="history plot" src="data:image/png;base64,{png}">'
    except ValueError:  # no metric to plot: the tables say so
        plot = ""
    tables = []
    for ctx in history.contexts:
        header = "".join(f"<th>{html.escape(h)}</th>"
                         for h in ["benchmark", "metric", *_group_header(ctx)])
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in [name, metric, *cells]) +
            "</tr>"
            for name, metric, cells in _rows(ctx))
        tables.append(f"<h2>{html.escape(ctx.label())}</h2><table><tr>{header}</tr>{body}"
                      f"</table>")
    summary = "".join(f"<li>{html.escape(line)}</li>" for line in _summary_lines(history))
    figures = "".join(
        f"<li>{html.escape(group)} {html.escape(_short(name))}: "
        f"<a href='{html.escape(png)}'>{html.escape(png)}</a></li>"
        for group, name, png in _run_figures(history))
    if figures:
        figures = f"<h2>Figures of the runs</h2><ul>{figures}</ul>"
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>pytest-ascend history</title>"
        "<style>body{font-family:sans-serif}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 6px;font-size:12px}</style></head><body>"
        f"<h1>pytest-ascend history by {html.escape(history.group_by)}</h1>"
        f"<ul>{summary}</ul>{''.join(tables)}{plot}{figures}</body></html>"
    )
    _write_new(path, page.encode())


def _run_figures(history: History) -> list[tuple[str, str, str]]:
    """(group, benchmark, PNG path) of each picture a run drew (a benchmark's
    `extra_info["plot_png"]`: the serving sweep under --ascend-report-dir), newest run of
    each group."""
    found = []
    for ctx in history.contexts:
        for group in ctx.groups:
            newest = ctx.runs[group][-1]
            for bench in newest.benchmarks:
                png = (bench.get("extra_info") or {}).get("plot_png")
                if isinstance(png, str):
                    found.append((group, bench.get("fullname") or bench.get("name"), png))
    return found


def _short(name: str) -> str:
    return name.split("::")[-1]


def _write_new(path: Path, data: bytes) -> None:
    """Written beside the target and renamed into place: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
