"""The history as a static site: a front page of what moved, and a page per box with each
metric along the nights.

The tables answer "did this version regress?". Someone triaging a night asks "what moved on
which box, when, and what changed there", and a series per box answers that at a glance: the
version boundaries, the steps found and the gate's verdicts side by side. Every series gets a
sparkline; the ones that moved (a step, or a regression or improvement by the gate) get a
full chart too. A chart takes matplotlib about 0.15 s to draw, so 50 metrics charted on each
of several boxes would take minutes, while most series lie flat.

The site must open wherever a nightly folder is copied to (an artifact store, a laptop, a
share) and from a file:// URL: so no server, no network, no script. Pages are plain HTML with
their style inline, charts are PNG files in `charts/` beside them, every link is relative,
and everything that came from a run is escaped. Each file is written to a temporary name and
renamed into place, so a reader never sees half a page.

A box is a run's --ascend-box-name, else its host (pytest-benchmark's
`machine_info["node"]`), as `pytest-ascend fleet` names it. The steps and the gate are those
of the whole context (every box's runs of one device, model and dtype), as
`pytest-ascend history` prints them; a box page draws its own runs of each series and marks
the steps whose first run after is one of them.
"""

from __future__ import annotations

import hashlib
import html
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from pytest_ascend.history.gate import UNKNOWN, Comparison, ContextHistory, History, \
    group_name, metric_samples
from pytest_ascend.history.render import _fmt, _scale, _short, _thin_overlapping_labels, \
    _write_new
from pytest_ascend.history.runs import Run, box_name
from pytest_ascend.history.steps import Step, _name, series_values

INDEX = "index.html"
CHARTS = "charts"
STYLE = (
    "body{font-family:sans-serif;margin:1em 2em;color:#222}"
    "table{border-collapse:collapse;margin:.4em 0}"
    "td,th{border:1px solid #ccc;padding:2px 6px;font-size:13px;text-align:left;"
    "vertical-align:top}"
    ".regression{color:#b00000;font-weight:bold}.improvement{color:#006400;font-weight:bold}"
    ".chart{display:flex;flex-wrap:wrap;gap:1em;align-items:flex-start;"
    "border-top:1px solid #ddd;padding:.5em 0}"
    ".chart img{width:640px;height:192px}.beside{max-width:34em;font-size:13px}"
    "code{background:#f4f4f4}"
)
CHART_SIZE_IN, CHART_DPI = (8.0, 2.4), 80  # 640 x 192 px, as the style shows it


def _slug(text: str) -> str:
    """A file-name-safe, still recognisable part of a name, with a digest of the whole, so
    two names that differ only in unsafe characters stay two files."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._")[:40] or "x"
    return f"{readable}-{hashlib.sha1(text.encode()).hexdigest()[:8]}"


def box_page(box: str) -> str:
    """The file name of a box's page, relative to the site's folder."""
    return f"box-{_slug(box)}.html"


@dataclass(frozen=True)
class Chart:
    """One metric of one benchmark along one box's runs of one context, and what to mark."""

    context_index: int
    context: ContextHistory
    benchmark: str
    metric: str
    runs: list  # the box's runs that measured it, oldest first
    values: list  # one per run, as the step detector reads it (steps.series_values)
    boundaries: list  # (position, group): the first run of each run of equal group_by values
    steps: list  # (position of its first run after, Step) of each step marked here
    comparisons: list  # the context's Comparisons of this metric: every box's runs pooled

    @property
    def anchor(self) -> str:
        return anchor(self.context_index, self.benchmark, self.metric)

    @property
    def png(self) -> str:
        return f"{CHARTS}/{_slug(box_name(self.runs[0]))}-{self.anchor}.png"

    @property
    def moved(self) -> bool:
        return bool(self.steps) or any(c.verdict in ("regression", "improvement")
                                       for c in self.comparisons)


def anchor(context_index: int, benchmark: str, metric: str) -> str:
    """The id of a chart on its box page: the same on every box, so the front page can link
    each box's chart of a moved metric."""
    return f"c{context_index}-{_slug(f'{benchmark}::{metric}')}"


def box_charts(history: History, box: str) -> list[Chart]:
    """Every (context, benchmark, metric) series the box's runs measured, in the order of the
    history's tables."""
    steps = history.steps.steps if history.steps is not None else []
    charts = []
    for index, ctx in enumerate(history.contexts):
        runs = sorted((run for members in ctx.runs.values() for run in members
                       if box_name(run) == box), key=lambda r: (r.datetime, r.source))
        for benchmark, metric in ctx.stats:
            kept, values = series_values(runs, benchmark, metric, metric_samples)
            if not kept:
                continue
            position = {run.source: i for i, run in enumerate(kept)}
            marks = [(position[s.after.source], s) for s in steps
                     if (s.benchmark, s.metric) == (benchmark, metric)
                     and s.after.source in position]
            charts.append(Chart(index, ctx, benchmark, metric, kept, values,
                                _boundaries(kept, history.group_by), marks,
                                [c for c in ctx.comparisons
                                 if (c.benchmark, c.metric) == (benchmark, metric)]))
    return charts


def _boundaries(runs: Sequence[Run], group_by: str) -> list[tuple[int, str]]:
    groups = [group_name(run, group_by) for run in runs]
    return [(i, g) for i, g in enumerate(groups) if i == 0 or g != groups[i - 1]]


def chart_figure(chart: Chart) -> Any:
    """The series by run, oldest to newest: dashed lines where the group changes (named
    above the plot), each step shaded (red worse, green better) and labelled with its size.
    Run dates below and versions above are thinned where they would overlap."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    factor, label = _scale(chart.metric)
    fig, ax = plt.subplots(figsize=CHART_SIZE_IN, dpi=CHART_DPI)
    ax.plot(range(len(chart.values)), [v * factor for v in chart.values], marker=".",
            markersize=3, linewidth=0.8, color="#1f77b4")
    for position, _ in chart.boundaries[1:]:
        ax.axvline(position - 0.5, color="0.45", linestyle="--", linewidth=0.8)
    for after, step in chart.steps:
        colour = "#d62728" if step.regression else "#2ca02c"
        ax.axvspan(after - 1 if after else -0.5, after, color=colour, alpha=0.25, linewidth=0)
        ax.text(after, 0.95, f" {step.change:+.1%}", transform=ax.get_xaxis_transform(),
                color=colour, fontsize=8, va="top", fontweight="bold")
    dates = [_literal(run.datetime[:10] or _name(run)) for run in chart.runs]
    # Labels fixed now, not formatted at draw time: the overlapping ones are hidden before.
    ticks = [int(x) for x in MaxNLocator(nbins=8, integer=True).tick_values(0, len(dates) - 1)
             if 0 <= x < len(dates)]
    ax.set_xticks(ticks, [dates[x] for x in ticks])
    ax.set_xlim(-0.5, max(len(dates) - 0.5, 0.5))
    ax.set_ylabel(label, fontsize=8)
    ax.tick_params(labelsize=7)
    ax.tick_params(axis="x", labelrotation=20)
    ax.grid(alpha=0.3)
    top = ax.secondary_xaxis("top")
    top.set_xticks([max(p - 0.5, 0) for p, _ in chart.boundaries],
                   [_literal(group) for _, group in chart.boundaries])
    top.tick_params(labelsize=7, labelrotation=20)
    for tick in top.get_xticklabels():
        tick.set_horizontalalignment("left")
    fig.subplots_adjust(left=0.09, right=0.98, bottom=0.22, top=0.78)
    _thin_overlapping_labels(fig, ax)
    _thin_overlapping_labels(fig, top)
    renderer = fig.canvas.get_renderer()
    for tick in top.get_xticklabels():  # a late version's name would run off the picture
        tick.set_visible(tick.get_visible() and
                         tick.get_window_extent(renderer).x1 <= fig.bbox.width)
    return fig


def _literal(text: str) -> str:
    """Text as matplotlib draws it, not as mathtext: a version with two `$` would otherwise
    be parsed as a formula, and fail the drawing."""
    return text.replace("$", r"\$")


def chart_png(chart: Chart) -> bytes:
    import matplotlib.pyplot as plt

    fig = chart_figure(chart)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=CHART_DPI)
    plt.close(fig)
    return buffer.getvalue()


def write_dashboard(history: History, out_dir: Path, set_aside: Sequence[str] = ()
                    ) -> list[Path]:
    """Write the site into `out_dir` (created): the front page, a page per box and the charts
    of the series that moved. Returns the pages, the front page first. The front page is
    written last, so that once it is there every page it links is too."""
    out_dir = Path(out_dir)
    boxes = {box: box_charts(history, box) for box in _boxes(history)}
    pages = []
    for box, charts in boxes.items():
        for chart in charts:
            if chart.moved:
                _write_new(out_dir / chart.png, chart_png(chart))
        pages.append(out_dir / box_page(box))
        _write_new(pages[-1], _page(f"{box}: pytest-ascend history",
                                    _box_body(history, box, charts)))
    front = out_dir / INDEX
    _write_new(front, _page("pytest-ascend history: what moved",
                            _front_body(history, boxes, set_aside)))
    return [front, *pages]


def _boxes(history: History) -> list[str]:
    return sorted({box_name(run) for ctx in history.contexts for members in ctx.runs.values()
                   for run in members})


def _page(title: str, body: str) -> bytes:
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            f"<link rel='icon' href='data:,'><title>{_e(title)}</title>"
            f"<style>{STYLE}</style></head><body>{body}</body></html>").encode()


def _e(value: object) -> str:
    """Run data as HTML text or an attribute value: host names, benchmark names, versions
    and telemetry are whatever the runs recorded."""
    return html.escape(str(value), quote=True)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A table of cells that are already HTML (escaped where they hold run data)."""
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _verdict(verdict: str) -> str:
    return f"<span class='{_e(verdict)}'>{_e(verdict)}</span>"


def _run_cell(run: Run) -> str:
    return f"{_e(_name(run))} ({_e(run.datetime or 'no date')}) on {_e(box_name(run))}"


# The front page


def _front_body(history: History, boxes: dict, set_aside: Sequence[str]) -> str:
    runs = [run for ctx in history.contexts for members in ctx.runs.values() for run in members]
    charted = {(box, chart.anchor) for box, charts in boxes.items() for chart in charts}
    nav = " | ".join(f"<a href='{_e(box_page(box))}'>{_e(box)}</a>" for box in boxes)
    parts = [
        "<h1>pytest-ascend history: what moved</h1>",
        f"<p>{len(runs)} run(s) on {len(boxes)} box(es) in {len(history.contexts)} "
        f"context(s), grouped by <code>{_e(history.group_by)}</code>. Boxes: {nav}</p>",
        "<h2>Regressions</h2>",
        _gate_table(history, "regression", charted),
        _steps_table(history, [s for s in _steps(history) if s.regression], charted),
        "<h2>Improvements</h2>",
        _gate_table(history, "improvement", charted),
        _steps_table(history, [s for s in _steps(history) if not s.regression], charted),
        _drifts(history),
        _unknown_runs(history),
        _set_aside(set_aside),
        _skipped(history),
        "<h2>Boxes</h2>",
        _boxes_table(boxes),
    ]
    return "".join(parts)


def _steps(history: History) -> list[Step]:
    return [] if history.steps is None else list(history.steps.steps)


def _chart_links(boxes: Sequence[str], target: str, charted: set) -> str:
    return ", ".join(f"<a href='{_e(box_page(box))}#{_e(target)}'>{_e(box)}</a>"
                     for box in sorted(set(boxes)) if (box, target) in charted) or "-"


def _gate_table(history: History, verdict: str, charted: set) -> str:
    """The gate's comparisons with this verdict: each version against its baseline, every
    box's runs of the context pooled."""
    rows = []
    for index, ctx in enumerate(history.contexts):
        for c in ctx.comparisons:
            if c.verdict != verdict:
                continue
            boxes = [box_name(run) for run in ctx.runs[c.group] + ctx.runs[c.baseline]]
            rows.append([_e(ctx.label()), _e(c.benchmark), _e(_scale(c.metric)[1]),
                         f"{_e(c.group)} vs {_e(c.baseline)}", f"{c.change:+.1%}",
                         _verdict(c.verdict), _e(c.reason()),
                         _chart_links(boxes, anchor(index, c.benchmark, c.metric), charted)])
    title = f"<h3>Between {_e(history.group_by)} versions (the gate): {len(rows)}</h3>"
    if not rows:
        return f"{title}<p>None.</p>"
    return title + _table(["context", "benchmark", "metric", "versions", "change", "verdict",
                           "why", "charts"], rows)


def _steps_table(history: History, steps: Sequence[Step], charted: set) -> str:
    """Steps along the nights: the size with its interval, the runs either side and every
    recorded fact that changed between them."""
    context_of = {run.source: index for index, ctx in enumerate(history.contexts)
                  for members in ctx.runs.values() for run in members}
    rows = []
    for step in steps:
        kind = _verdict("regression" if step.regression else "improvement")
        if not step.gated:
            kind += " (smoke run: shown, not judged)"
        target = anchor(context_of[step.after.source], step.benchmark, step.metric)
        facts = "".join(f"<li><code>{_e(key)}</code> {_e(old)} &rarr; {_e(new)}</li>"
                        for key, old, new in step.changed) or "<li>no recorded fact changed</li>"
        rows.append([kind, _e(step.benchmark), _e(step.metric),
                     f"{step.change:+.1%} [{step.ratio_low - 1:+.1%}, "
                     f"{step.ratio_high - 1:+.1%}]",
                     f"last before: {_run_cell(step.before)}<br>first after: "
                     f"{_run_cell(step.after)}",
                     f"<ul>{facts}</ul>",
                     _chart_links([box_name(step.after)], target, charted)])
    title = f"<h3>Steps along the nights: {len(rows)}</h3>"
    if not rows:
        return f"{title}<p>None.</p>"
    return title + _table(["step", "benchmark", "metric", "size [95% interval]", "between",
                           "what changed", "chart"], rows)


def _drifts(history: History) -> str:
    drifts = [] if history.steps is None else history.steps.drifts
    items = "".join(f"<li>{_e(d.benchmark)}: {_e(d.describe())}</li>" for d in drifts)
    return f"<h2>Drifts</h2><ul>{items}</ul>" if items else "<h2>Drifts</h2><p>None.</p>"


def _unknown_runs(history: History) -> str:
    """Named one by one: nights of unknown versions are never pooled into one median."""
    title = f"<h2>Runs that do not say their {_e(history.group_by)}: {history.unknown_runs}</h2>"
    runs = [run for ctx in history.contexts for run in ctx.runs.get(UNKNOWN, ())]
    if not runs:
        return f"{title}<p>Every run says its {_e(history.group_by)}.</p>"
    items = "".join(f"<li>{_run_cell(run)}</li>" for run in runs)
    return (f"{title}<p>Grouped as <code>{UNKNOWN}</code>, never compared as a version; the "
            f"steps judge them night by night.</p><details><summary>the {len(runs)} run(s)"
            f"</summary><ul>{items}</ul></details>")


def _set_aside(set_aside: Sequence[str]) -> str:
    title = f"<h2>Set aside (throttled cards): {len(set_aside)}</h2>"
    if not set_aside:
        return f"{title}<p>No benchmark was set aside.</p>"
    items = "".join(f"<li>{_e(note)}</li>" for note in set_aside)
    return f"{title}<details><summary>the notes</summary><ul>{items}</ul></details>"


def _skipped(history: History) -> str:
    if not history.skipped:
        return ""
    items = "".join(f"<li>{_e(s.source)}: {_e(s.reason)}</li>" for s in history.skipped)
    return (f"<h2>Files skipped: {len(history.skipped)}</h2><details><summary>the files and "
            f"why</summary><ul>{items}</ul></details>")


def _boxes_table(boxes: dict) -> str:
    rows = []
    for box, charts in boxes.items():
        runs = {run.source: run for chart in charts for run in chart.runs}
        newest = max((run.datetime for run in runs.values()), default="") or "-"
        rows.append([f"<a href='{_e(box_page(box))}'>{_e(box)}</a>", str(len(runs)),
                     _e(newest), str(len(charts)), str(sum(c.moved for c in charts)),
                     str(sum(len(c.steps) for c in charts))])
    return _table(["box", "runs", "newest run", "series", "moved", "steps"], rows)


# A box's page


def _box_body(history: History, box: str, charts: Sequence[Chart]) -> str:
    runs = {run.source: run for chart in charts for run in chart.runs}
    moved = [c for c in charts if c.moved]
    parts = [f"<p><a href='{INDEX}'>&larr; what moved, all boxes</a></p>",
             f"<h1>Box {_e(box)}</h1>",
             f"<p>{len(runs)} run(s) with figures, {len(charts)} series, {len(moved)} of them "
             f"moved (a step, or the gate's regression or improvement): those are charted. "
             f"Dashed lines: <code>{_e(history.group_by)}</code> changes (named above each "
             f"chart). Shaded: a step found along the context's nights, red worse, green "
             f"better. The gate's verdicts pool every box's runs of the context.</p>"]
    if not charts:
        return "".join(parts) + "<p>No metric was measured in these runs.</p>"
    links = ", ".join(f"<a href='#{_e(c.anchor)}'>{_e(_scale(c.metric)[1])} of "
                      f"{_e(_short(c.benchmark))}</a>" for c in moved)
    parts.append(f"<p>Moved here: {links}</p>" if moved else "<p>Nothing moved here.</p>")
    previous: tuple = (None, None)  # charts come by context, then benchmark
    for index, chart in enumerate(charts):
        if chart.context_index != previous[0]:
            parts.append(f"<h2>{_e(chart.context.label())}</h2>")
        if (chart.context_index, chart.benchmark) != previous:
            same = [c for c in charts[index:] if (c.context_index, c.benchmark) ==
                    (chart.context_index, chart.benchmark)]
            parts += [f"<h3>{_e(chart.benchmark)}</h3>", _newest_telemetry(chart),
                      _series_table(same), *(_chart_block(c, box) for c in same if c.moved)]
        previous = (chart.context_index, chart.benchmark)
    return "".join(parts)


def _series_table(charts: Sequence[Chart]) -> str:
    """Every series of a benchmark, each with a sparkline: a box measures tens of metrics,
    and a full chart of each would take seconds to draw while most lie flat. The moved ones
    link to their chart; the others hold their anchor here."""
    rows = []
    for c in charts:
        factor, label = _scale(c.metric)
        name = (f"<a href='#{_e(c.anchor)}'>{_e(label)}</a>" if c.moved
                else f"<span id='{_e(c.anchor)}'>{_e(label)}</span>")
        rows.append([name, _sparkline(c), _fmt(c.values[-1] * factor),
                     f"{_fmt(min(c.values) * factor)} - {_fmt(max(c.values) * factor)}",
                     str(len(c.runs)),
                     ", ".join(f"{s.change:+.1%}" for _, s in c.steps) or "-",
                     _verdict_counts(c.comparisons)])
    return _table(["metric", "oldest to newest", "newest", "range", "runs", "steps", "gate"],
                  rows)


SPARK_W, SPARK_H = 240, 32
# A sparkline spans at least a quarter of its level: scaled to its own range, 2% noise would
# fill the box as a 30% step does.
SPARK_MIN_SPAN = 0.25


def _sparkline(chart: Chart) -> str:
    """The series as an inline SVG line, with the version boundaries and steps marked as on
    a chart: drawn in microseconds, and no file to go missing."""
    middle = (min(chart.values) + max(chart.values)) / 2
    span = max(max(chart.values) - min(chart.values), SPARK_MIN_SPAN * abs(middle))
    last = max(len(chart.values) - 1, 1)

    def x(position: float) -> float:
        return 1 + (SPARK_W - 2) * max(position, 0) / last

    def y(value: float) -> float:
        return SPARK_H / 2 if not span else SPARK_H / 2 - (SPARK_H - 4) * (value - middle) / span

    marks = "".join(f"<line x1='{x(p - 0.5):.1f}' x2='{x(p - 0.5):.1f}' y1='0' "
                    f"y2='{SPARK_H}' stroke='#999' stroke-dasharray='2,2'/>"
                    for p, _ in chart.boundaries[1:])
    marks += "".join(f"<rect x='{x(after - 1):.1f}' y='0' width='{x(after) - x(after - 1):.1f}' "
                     f"height='{SPARK_H}' fill='{'#d62728' if s.regression else '#2ca02c'}' "
                     f"fill-opacity='0.35'/>" for after, s in chart.steps)
    points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(chart.values))
    return (f"<svg width='{SPARK_W}' height='{SPARK_H}' role='img'><title>"
            f"{_e(_scale(chart.metric)[1])}, {len(chart.values)} runs</title>{marks}"
            f"<polyline fill='none' stroke='#1f77b4' stroke-width='1' points='{points}'/></svg>")


def _verdict_counts(comparisons: Sequence[Comparison]) -> str:
    """The gate's verdicts of a series in a few words: `same 14, not gated 1`."""
    counts: dict = {}
    for c in comparisons:
        counts[c.verdict] = counts.get(c.verdict, 0) + 1
    order = ("regression", "improvement", "same", "not gated")
    return ", ".join(f"{_verdict(v)} {counts[v]}" for v in order if v in counts) or "-"


def _chart_block(chart: Chart, box: str) -> str:
    metric = _scale(chart.metric)[1]
    alt = f"{metric} of {_short(chart.benchmark)} on {box}: {len(chart.runs)} runs"
    steps = "".join(f"<li>{_verdict('regression' if s.regression else 'improvement')} "
                    f"{_e(s.describe())}</li>" for _, s in chart.steps)
    steps = f"<p>Steps:</p><ul>{steps}</ul>" if steps else "<p>No step on this box.</p>"
    return (f"<div class='chart' id='{_e(chart.anchor)}'><div><h4>{_e(metric)} of "
            f"{_e(_short(chart.benchmark))}</h4><img src='{_e(chart.png)}' alt='{_e(alt)}'>"
            f"</div><div class='beside'>{steps}{_comparisons(chart.comparisons)}</div></div>")


def _comparisons(comparisons: Sequence[Comparison]) -> str:
    if not comparisons:
        return "<p>The gate compared nothing: one version only.</p>"
    rows = [[f"{_e(c.group)} vs {_e(c.baseline)}", f"{c.change:+.1%}", _verdict(c.verdict),
             _e(c.not_gated_because if c.not_gated_because else c.reason())]
            for c in comparisons]
    return _table(["versions", "change", "verdict", "why"], rows)


def _newest_telemetry(chart: Chart) -> str:
    """The card as the box's newest run of this benchmark read it: a hot or throttled card
    is told from a slower stack here."""
    run = chart.runs[-1]
    bench = next((b for b in run.benchmarks
                  if (b.get("fullname") or b.get("name")) == chart.benchmark), {})
    telemetry = (bench.get("extra_info") or {}).get("telemetry")
    if not isinstance(telemetry, dict) or not telemetry:
        return f"<p>Telemetry of the newest run ({_e(_name(run))}): no telemetry recorded.</p>"
    cards = telemetry.get("cards")
    cards = [c for c in cards if isinstance(c, dict)] if isinstance(cards, list) else [telemetry]
    tables = "".join(_telemetry_table(card) for card in cards)
    return f"<p>Telemetry of the newest run ({_e(_name(run))}):</p>{tables}"


def _telemetry_table(card: dict) -> str:
    """Gauges (min, median, max over the benchmark's region) first, then single figures:
    energy, whether and why it throttled, how many readings."""
    gauges = "".join(f"<tr><td>{_e(key)}</td>" +
                     "".join(f"<td>{_number(value.get(k))}</td>" for k in ("min", "median", "max"))
                     + "</tr>" for key, value in card.items() if isinstance(value, dict))
    figures = "".join(f"<tr><td>{_e(key)}</td><td colspan='3'>{_telemetry_value(value)}</td></tr>"
                      for key, value in card.items()
                      if not isinstance(value, dict) and key not in ("card", "cards"))
    caption = f"card {_e(card['card'])}" if "card" in card else "card"
    return (f"<table><tr><th>{caption}</th><th>min</th><th>median</th><th>max</th></tr>"
            f"{gauges}{figures}</table>")


def _telemetry_value(value: Any) -> str:
    if value is None:
        return "not read"
    if isinstance(value, list):
        return _e(", ".join(map(str, value))) or "none"
    if isinstance(value, float):
        return _fmt(value)
    return _e(value)


def _number(value: Any) -> str:
    return _fmt(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
        else _e("-" if value is None else value)
