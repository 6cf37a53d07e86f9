"""Steps along the nights: change points in each metric's whole chronological history.

The version-group gate compares each CANN version's median with the previous one. A firmware
update, a driver update, a card that ages or a neighbour job shows up inside one version, as
a step between two nights. So each (context, benchmark, metric) series, one value per run in
date order, is fitted with steps:

- on the log of the values, so a step is a ratio and the noise is relative;
- by ruptures' PELT on the l2 cost (`KernelCPD(kernel="linear")`, its compiled
  implementation), the exact optimal segmentation for a penalty per step;
- with the penalty from a noise model fitted per series: beta x sigma^2 x ln(n), where sigma
  is the robust spread of the night-to-night differences (1.4826 x MAD / sqrt 2). A step
  itself is one large difference and moves a median absolute deviation hardly at all.
  STEP_BETA is BIC's 2 raised to 5. A nightly history is fitted 50 metrics at a time, and at
  BIC's level three nights of noise at the end of some series looked like a step; at 5, pure
  noise over 300 nights x 50 metrics shows none (tests/plugin/test_history_steps.py). A 20%
  step over 3% noise still clears the penalty a hundredfold.
- with at least MIN_SEGMENT nights on each side, and the segments' medians compared, so one
  odd night is an outlier, not two steps.

ruptures was chosen over asv's step detection. ruptures is a maintained library whose cost
and penalty are ours to set from the noise model. asv's detector is an internal module of a
benchmark runner, with its own penalty and a 5% rule, and it reports only the latest
regression. Each step found is reported with:

- the last run before it and the first run after it;
- its size as a ratio of the two segments' medians, with a 95% interval
  (+-1.96 sigma sqrt(1/n1 + 1/n2) in log space);
- every string fact of machine_info that differs between those two runs: CANN, driver,
  firmware, torch_npu, the host.

A step whose interval holds no change is dropped. Two or more steps in a row in one
direction are also reported together, as a drift over their span.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import median
from typing import Any, Iterable, Sequence

from pytest_ascend.history.runs import CONTEXT_KEYS, Run, finite_number

STEP_BETA = 5.0
MIN_SEGMENT = 3  # nights: one odd night is an outlier, not a step
MIN_SIGMA = 1e-3  # 0.1%: a figure that repeats exactly still has this much slack
MIN_RUNS = 6  # fewer nights say nothing about steps
Z_95 = 1.959963984540054


@dataclass(frozen=True)
class Step:
    context: str
    benchmark: str
    metric: str
    before: Run  # the last run before the step
    after: Run  # the first run after it
    index: int  # the after-run's position in the series
    level_before: float
    level_after: float
    ratio: float  # after / before, of the segments' medians
    ratio_low: float
    ratio_high: float
    higher_is_better: bool
    changed: tuple = ()  # (key, before, after) of every string fact that differs
    gated: bool = True  # False in a smoke run's history: shown, never failing a gate

    @property
    def change(self) -> float:
        return self.ratio - 1

    @property
    def regression(self) -> bool:
        return self.ratio < 1 if self.higher_is_better else self.ratio > 1

    def describe(self) -> str:
        what = "regression" if self.regression else "improvement"
        facts = "; ".join(f"{key} {old} -> {new}" for key, old, new in self.changed) or \
            "no recorded fact changed"
        return (f"{self.metric} {self.change:+.1%} [{self.ratio_low - 1:+.1%}, "
                f"{self.ratio_high - 1:+.1%}] {what} between {_name(self.before)} "
                f"({self.before.datetime}) and {_name(self.after)} ({self.after.datetime}): "
                f"{facts}")


@dataclass(frozen=True)
class Drift:
    context: str
    benchmark: str
    metric: str
    steps: tuple  # Step, consecutive, in one direction
    ratio: float  # over the whole span

    def describe(self) -> str:
        first, last = self.steps[0], self.steps[-1]
        return (f"{self.metric} drifted {self.ratio - 1:+.1%} in {len(self.steps)} steps between "
                f"{_name(first.before)} and {_name(last.after)}")


def _name(run: Run) -> str:
    """A run by its file's name (the storage's folders and the machine id say nothing new)."""
    return run.source.replace("\\", "/").rsplit("/", 1)[-1]


@dataclass
class StepReport:
    steps: list = field(default_factory=list)
    drifts: list = field(default_factory=list)
    series: int = 0  # how many series were fitted
    too_short: int = 0  # series with fewer than MIN_RUNS nights

    @property
    def regressions(self) -> list:
        return [step for step in self.steps if step.regression]


def noise_sigma(logs: Sequence[float]) -> float:
    """The robust night-to-night spread of a log series, never below MIN_SIGMA."""
    diffs = [b - a for a, b in zip(logs, logs[1:])]
    if not diffs:
        return MIN_SIGMA
    centre = median(diffs)
    mad = median(abs(d - centre) for d in diffs)
    return max(1.4826 * mad / math.sqrt(2), MIN_SIGMA)


def breakpoints(logs: Sequence[float], sigma: float, beta: float = STEP_BETA) -> list[int]:
    """Where the best segmentation puts its steps: the index of each segment's first value
    after the first."""
    import numpy as np
    import ruptures

    signal = np.asarray(logs, dtype=float).reshape(-1, 1)
    penalty = beta * sigma ** 2 * math.log(len(logs))
    found = ruptures.KernelCPD(kernel="linear", min_size=MIN_SEGMENT).fit(signal).predict(
        pen=penalty)
    return [int(b) for b in found[:-1]]


def fit_steps(runs: Sequence[Run], values: Sequence[float], *, context: str, benchmark: str,
              metric: str, higher_is_better: bool, beta: float = STEP_BETA) -> list[Step]:
    """The steps of one series (`values[i]` measured by `runs[i]`, oldest first)."""
    logs = [math.log(v) for v in values]
    sigma = noise_sigma(logs)
    cuts = breakpoints(logs, sigma, beta)
    edges = [0, *cuts, len(logs)]
    steps = []
    for start, cut, end in zip(edges, edges[1:], edges[2:]):
        before, after = logs[start:cut], logs[cut:end]
        level_before, level_after = median(before), median(after)
        half = Z_95 * sigma * math.sqrt(1 / len(before) + 1 / len(after))
        difference = level_after - level_before
        if abs(difference) <= half:
            continue
        steps.append(Step(context, benchmark, metric, runs[cut - 1], runs[cut], cut,
                          math.exp(level_before), math.exp(level_after), math.exp(difference),
                          math.exp(difference - half), math.exp(difference + half),
                          higher_is_better, changed_facts(runs[cut - 1], runs[cut]),
                          not runs[cut].lookup("ascend.smoke")))
    return steps


def drifts(steps: Sequence[Step]) -> list[Drift]:
    """Runs of two or more consecutive steps of one series in one direction."""
    found, current = [], []
    for step in [*steps, None]:
        if current and (step is None or (step.ratio > 1) != (current[-1].ratio > 1)):
            if len(current) >= 2:
                ratio = math.prod(s.ratio for s in current)
                found.append(Drift(current[0].context, current[0].benchmark, current[0].metric,
                                   tuple(current), ratio))
            current = []
        if step is not None:
            current.append(step)
    return found


def changed_facts(before: Run, after: Run) -> tuple:
    """(key, before, after) of every string-valued machine_info fact that differs: versions,
    names, the host. Measured figures (numbers) always differ and are left out."""
    old, new = dict(_string_facts(before.machine_info)), dict(_string_facts(after.machine_info))
    return tuple((key, old.get(key), new.get(key)) for key in sorted(set(old) | set(new))
                 if old.get(key) != new.get(key))


def _string_facts(tree: Any, prefix: str = "") -> Iterable[tuple[str, str]]:
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from _string_facts(value, f"{prefix}{key}.")
    elif isinstance(tree, str):
        yield prefix[:-1], tree


def series_values(runs: Sequence[Run], benchmark: str, metric: str,
                  samples: Any) -> tuple[list[Run], list[float]]:
    """The runs that measured `metric` of `benchmark` (positive and finite), and one value
    each: the median of its samples (`samples(bench, metric)`, the gate's reading)."""
    kept_runs, values = [], []
    for run in runs:
        bench = next((b for b in run.benchmarks
                      if (b.get("fullname") or b.get("name")) == benchmark), None)
        found = [v for v in (samples(bench, metric) if bench else []) if finite_number(v)]
        if found and median(found) > 0:
            kept_runs.append(run)
            values.append(median(found))
    return kept_runs, values


def find_steps(runs: Sequence[Run], metrics: Sequence[str], *, beta: float = STEP_BETA
               ) -> StepReport:
    """Steps in every metric of every benchmark of every context (CONTEXT_KEYS), each series
    in date order."""
    from pytest_ascend.history.gate import metric_samples, higher_is_better

    report = StepReport()
    by_context: dict = {}
    for run in sorted(runs, key=lambda r: (r.datetime, r.source)):
        key = tuple(str(run.lookup(k)) for k in CONTEXT_KEYS)
        by_context.setdefault(key, []).append(run)
    for key, members in by_context.items():
        context = " / ".join(part for part in key if part != "None")
        names = sorted({b.get("fullname") or b.get("name") for r in members for b in r.benchmarks})
        for name in names:
            for metric in metrics:
                kept, values = series_values(members, name, metric, metric_samples)
                if not values:
                    continue
                report.series += 1
                if len(values) < MIN_RUNS:
                    report.too_short += 1
                    continue
                found = fit_steps(kept, values, context=context, benchmark=name, metric=metric,
                                  higher_is_better=higher_is_better(metric), beta=beta)
                report.steps += found
                report.drifts += drifts(found)
    return report
