"""What the history says beside a moved figure, so that "the CANN upgrade" is told from "a
hot card" at a glance: each side's card (median clock, temperature and power over its runs'
timed regions) and every component version that differs between the two sides. And what it
sets aside before judging: a benchmark whose card throttled during its timed region is
neither a baseline nor a regression; its figure says more about the card than the stack.

The telemetry is the session's own (extra_info["telemetry"], docs/telemetry.md)."""

from __future__ import annotations

import dataclasses
from statistics import median
from typing import Any, Optional, Sequence

from pytest_ascend.history.runs import Run

# machine_info["ascend"] keys naming a component; a move with one of these different between
# its sides may be that component's doing
VERSION_KEYS = ("cann", "driver", "firmware", "torch", "torch_npu", "transformers", "sglang",
                "python")
CARD_GAUGES = (("core_clock_mhz", "clock", "MHz"), ("temperature_c", "temperature", "C"),
               ("power_w", "power", "W"))


def _name(bench: dict) -> str:
    return bench.get("fullname") or bench.get("name")


def _telemetry(bench: dict) -> dict:
    extra = bench.get("extra_info")
    telemetry = extra.get("telemetry") if isinstance(extra, dict) else None
    return telemetry if isinstance(telemetry, dict) else {}


def set_aside_throttled(runs: Sequence[Run]) -> tuple[list[Run], list[str]]:
    """The runs without their throttled benchmarks, and a line for each one set aside."""
    kept, notes = [], []
    for run in runs:
        benchmarks = []
        for bench in run.benchmarks:
            telemetry = _telemetry(bench)
            if telemetry.get("throttled") is True:
                drop = telemetry.get("clock_drop")
                reasons = ", ".join(telemetry.get("throttle_reasons") or []) or "no reason given"
                how = f"clock -{drop:.0%}" if isinstance(drop, (int, float)) else "clock unknown"
                notes.append(f"{_name(bench)} in {run.source} set aside, neither baseline nor "
                             f"regression: its card throttled ({how}; {reasons})")
            else:
                benchmarks.append(bench)
        kept.append(dataclasses.replace(run, benchmarks=benchmarks))
    return kept, notes


def card_medians(runs: Sequence[Run], benchmark: str) -> dict[str, Optional[float]]:
    """Each card gauge's median over the runs' regions of `benchmark` (None: never read)."""
    found: dict[str, Optional[float]] = {}
    for gauge, _, _ in CARD_GAUGES:
        values = []
        for run in runs:
            for bench in run.benchmarks:
                if _name(bench) == benchmark:
                    summary = _telemetry(bench).get(gauge)
                    if isinstance(summary, dict) and isinstance(summary.get("median"),
                                                                (int, float)):
                        values.append(summary["median"])
        found[gauge] = median(values) if values else None
    return found


def differing_versions(before: Sequence[Run], after: Sequence[Run]) -> list[str]:
    """`cann 8.0.RC2 -> 8.1.RC1` for each component whose versions differ between the sides."""
    lines = []
    for key in VERSION_KEYS:
        old = sorted({str(v) for run in before if (v := run.lookup(f"ascend.{key}")) is not None})
        new = sorted({str(v) for run in after if (v := run.lookup(f"ascend.{key}")) is not None})
        if old != new:
            lines.append(f"{key} {'/'.join(old) or 'unknown'} -> {'/'.join(new) or 'unknown'}")
    return lines


def _card_line(values: dict[str, Optional[float]]) -> str:
    parts = [f"{label} {values[gauge]:.4g} {unit}" if values[gauge] is not None
             else f"{label} unknown" for gauge, label, unit in CARD_GAUGES]
    return ", ".join(parts)


def explain(history: Any) -> list[dict]:
    """For each gated change that moved (a regression or an improvement): both sides' cards
    and the components that differ."""
    explained = []
    for ctx in history.contexts:
        for comparison in ctx.comparisons:
            if comparison.verdict not in ("regression", "improvement"):
                continue
            before, after = ctx.runs[comparison.baseline], ctx.runs[comparison.group]
            explained.append({
                "benchmark": comparison.benchmark, "metric": comparison.metric,
                "verdict": comparison.verdict,
                "baseline": comparison.baseline, "group": comparison.group,
                "baseline_card": card_medians(before, comparison.benchmark),
                "group_card": card_medians(after, comparison.benchmark),
                "versions": differing_versions(before, after),
            })
    return explained


def explanation_lines(explained: Sequence[dict]) -> list[str]:
    lines = []
    for item in explained:
        versions = "; ".join(item["versions"]) or "no component version differs"
        lines += [f"beside the {item['verdict']} of {item['benchmark']} {item['metric']}:",
                  f"  card in {item['baseline']}: {_card_line(item['baseline_card'])}",
                  f"  card in {item['group']}: {_card_line(item['group_card'])}",
                  f"  versions: {versions}"]
    return lines
