"""The fleet's runs, grouped and judged: each box's newest run against the other boxes of its
group (same device, model, dtype, smoke run or not, and CANN version unless
`across_versions`), and against its own earlier runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import Iterable, Optional, Sequence

from pytest_ascend.fleet.outliers import (MIN_BOXES, MIN_GAP, THRESHOLD, Flag, fleet_outliers,
                                          history_outlier)
from pytest_ascend.history.runs import (CONTEXT_KEYS, HistoryError, Run, Skipped, box_name,
                                        is_results_log, load_runs, results_log_runs)
from pytest_ascend.reports.results_log import read_results_log

VERSION_KEY = "ascend.cann"


@dataclass
class FleetGroup:
    label: str
    boxes: list  # host names, sorted
    values: dict = field(default_factory=dict)  # (benchmark, metric) -> {box: newest value}
    flags: list = field(default_factory=list)  # Flag, worst first
    history_flags: list = field(default_factory=list)

    @property
    def comparable(self) -> bool:
        return len(self.boxes) >= MIN_BOXES

    def worst_gap(self, box: str, metric: str) -> Optional[float]:
        """The box's gap from the fleet median in `metric`, the worst over its benchmarks, as
        a fraction of the median, signed as the value moved."""
        from pytest_ascend.history.gate import higher_is_better

        gaps = []
        for (_, name), by_box in self.values.items():
            if name == metric and box in by_box:
                centre = median(by_box.values())
                if centre:
                    gaps.append(by_box[box] / centre - 1)
        if not gaps:
            return None
        return min(gaps) if higher_is_better(metric) else max(gaps)


@dataclass
class FleetReport:
    groups: list
    skipped: list  # history.runs.Skipped
    metrics: tuple

    @property
    def flags(self) -> list:
        return [flag for group in self.groups for flag in [*group.flags, *group.history_flags]]

    @property
    def comparable(self) -> bool:
        return any(group.comparable for group in self.groups)


def read_results(paths: Iterable[Path]) -> tuple[list[Run], list[Skipped]]:
    """Every run under `paths`: a directory is benchmark storage, a file a --benchmark-json
    or a results log (--ascend-results-log: each of its sessions is a run)."""
    runs: list[Run] = []
    skipped: list[Skipped] = []
    for path in paths:
        if not path.exists():
            raise HistoryError(f"{path}: no such file or directory")
        if path.is_file() and _is_results_log(path):
            found = results_log_runs(path, read_results_log(path))
            runs += [run for run in found if isinstance(run, Run)]
            skipped += [run for run in found if isinstance(run, Skipped)]
            continue
        stored = load_runs(str(path), ()) if path.is_dir() else load_runs(None, [path])
        runs += stored[0]
        skipped += stored[1]
    return runs, skipped


def _is_results_log(path: Path) -> bool:
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            return is_results_log(handle.readline())
    except OSError:
        return False


def compare_fleet(runs: Sequence[Run], metrics: Sequence[str], *, across_versions: bool = False,
                  threshold: float = THRESHOLD, min_gap: float = MIN_GAP,
                  skipped: Sequence[Skipped] = ()) -> FleetReport:
    from pytest_ascend.history.gate import metric_samples, higher_is_better

    keys = [*CONTEXT_KEYS, *(() if across_versions else (VERSION_KEY,))]
    grouped: dict = {}
    for run in sorted(runs, key=lambda r: (r.datetime, r.source)):
        group = tuple(str(run.lookup(key)) for key in keys)
        box = box_name(run)
        grouped.setdefault(group, {}).setdefault(box, []).append(run)
    report = FleetReport([], list(skipped), tuple(metrics))
    for key, by_box in grouped.items():
        label = " / ".join(f"{name.split('.')[-1]} {value}" for name, value in zip(keys, key)
                           if value != "None")
        group = FleetGroup(label, sorted(by_box))
        history: dict = {}
        for box, box_runs in by_box.items():
            for run in box_runs:  # oldest first: the newest value stays
                for bench in run.benchmarks:
                    name = bench.get("fullname") or bench.get("name")
                    for metric in metrics:
                        samples = metric_samples(bench, metric)
                        if samples:
                            value = median(samples)
                            group.values.setdefault((name, metric), {})[box] = value
                            history.setdefault((box, name, metric), []).append(value)
        for (name, metric), values in group.values.items():
            better = higher_is_better(metric)
            group.flags += fleet_outliers(values, benchmark=name, metric=metric,
                                          higher_is_better=better, threshold=threshold,
                                          min_gap=min_gap)
        for (box, name, metric), series in history.items():
            flag = history_outlier(box, series[:-1], series[-1], benchmark=name, metric=metric,
                                   higher_is_better=higher_is_better(metric),
                                   threshold=threshold, min_gap=min_gap)
            if flag is not None:
                group.history_flags.append(flag)
        group.flags.sort(key=lambda flag: -flag.score)
        report.groups.append(group)
    return report


def flagged_boxes(report: FleetReport) -> list[str]:
    return sorted({flag.box for flag in report.flags})


__all__ = ["Flag", "FleetGroup", "FleetReport", "compare_fleet", "flagged_boxes",
           "read_results"]
