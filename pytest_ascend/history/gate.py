"""Benchmark histories across CANN (or any environment) versions, with a noise-aware gate.

pytest-benchmark's `--benchmark-compare-fail` compares one run with one other by a fixed
percentage and only for time; asv tracks commits. The nightly question here is different:
did the new CANN / driver / torch_npu make anything slower? So runs are grouped by a
machine_info key (`ascend.cann` by default), never across device kinds, device models,
models, dtypes or smoke-vs-hardware (those form separate contexts, listed side by side),
and each metric's change between groups is judged against the noise the runs themselves
show.

The regression rule (docs/history.md explains the choice): a metric regressed when it moved
in its bad direction by more than max(min_change, noise_factor x noise), measured as a
factor on its cost (a throughput halved moved by 100%, as a latency doubled), where noise is the
mean of the two groups' relative interquartile ranges of that metric's own samples: its
per-round values where the run kept them (`stats.data` for time, `extra_info["rounds"]`
for TTFT, TPOT, throughput and roofline), else one value per run. A group whose noise
cannot be estimated (fewer than 2 runs, or fewer than 3 samples) is reported, not gated.

Smoke runs (the built-in tiny model) are reported, never gated: their TTFT is a few
milliseconds, and back-to-back runs on a shared CPU move it by up to 40-66% in blocks of
runs (the machine's state drifts) while each run's rounds agree within a few percent, so
no rule short of ignoring changes below ~70% could tell drift from a regression there.

Numerics (perplexity, KL to a golden, token agreement) are another kind of figure: on one
stack they repeat to the last digit, so a change means the stack computes differently.
They are gated on one run per group, in smoke runs too (a wrong kernel is as wrong on the
tiny model), by a fixed allowance per metric (DETERMINISTIC_METRICS), widened only if the
runs of a group do disagree among themselves.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Iterable, Optional

from pytest_ascend.history.runs import CONTEXT_KEYS, HistoryError, Run, finite_number
from pytest_ascend.measure.stats import percentile

DEFAULT_GROUP_BY = "ascend.cann"
DEFAULT_METRICS = ("time", "ttft_ms", "tpot_ms", "output_tokens_per_s", "roofline_fraction",
                   "energy_per_token_j", "perplexity", "golden_kl_mean", "token_agreement",
                   "saturation_rate_per_s", "peak_goodput_per_s", "accuracy")
_HIGHER_IS_BETTER = re.compile(
    r"(_per_s|_fraction|_gb_s|_tflops|speedup|scaling_vs_batch1|hit_rate|acceptance_rate|"
    r"tokens_saved|mean_accepted_length|agreement|accuracy)$"
)
# Figures judged elsewhere, and only reported here: accuracy is gated paired, question by
# question, by the run itself against a recorded stack (--ascend-golden; accuracy/paired.py).
# Between groups of runs the history sees accuracies alone, not which questions changed.
JUDGED_ELSEWHERE = {
    "accuracy": "paired per question by the run's McNemar test (--ascend-golden)",
}


@dataclass(frozen=True)
class DeterministicRule:
    """How far a deterministic metric may move between groups: the larger of a fraction of
    the baseline and an absolute amount (an absolute one where the baseline can be 0)."""

    relative: float
    absolute: float

    def allowed(self, baseline: float) -> float:
        return max(self.relative * abs(baseline), self.absolute)


# docs/history.md gives the reasons for each allowance.
DETERMINISTIC_METRICS = {
    "perplexity": DeterministicRule(relative=0.01, absolute=0.0),
    "golden_kl_mean": DeterministicRule(relative=1.0, absolute=1e-6),
    "token_agreement": DeterministicRule(relative=0.0, absolute=0.03),
}


def higher_is_better(metric: str) -> bool:
    """Throughputs, rates, fractions of a limit and speedups; everything else (times,
    latencies, memory) is better lower."""
    return bool(_HIGHER_IS_BETTER.search(metric))


MIN_SAMPLES, MIN_RUNS = 3, 2  # what it takes to estimate a group's noise


@dataclass(frozen=True)
class GroupStats:
    """One metric of one benchmark in one group: its samples and their quartiles."""

    samples: tuple[float, ...]  # per-round values where the runs kept them, else one per run
    runs: int
    # The newest run's own interval for the figure (extra_info["<metric>_interval"]), where
    # it has one: an accuracy's Wilson interval.
    interval: Optional[tuple[float, float]] = None

    @property
    def gated(self) -> bool:
        """Whether the samples say enough about the noise to judge a change by them: rounds
        alone miss run-to-run noise (a machine's state between two runs moved TTFT by up to
        66% on a 2-core CPU), and two values alone are no spread."""
        return len(self.samples) >= MIN_SAMPLES and self.runs >= MIN_RUNS

    @property
    def median(self) -> float:
        return percentile(self.samples, 50)

    @property
    def q1(self) -> float:
        return percentile(self.samples, 25)

    @property
    def q3(self) -> float:
        return percentile(self.samples, 75)

    @property
    def noise(self) -> float:
        """Relative spread: IQR / median of the samples."""
        return (self.q3 - self.q1) / abs(self.median) if self.median else 0.0


@dataclass(frozen=True)
class Comparison:
    benchmark: str
    metric: str
    group: str
    baseline: str
    change: float  # relative change of the median, (group - baseline) / baseline
    threshold: float
    higher_is_better: bool
    not_gated_because: Optional[str] = None  # why the change is only reported
    values: tuple[float, float] = (math.nan, math.nan)  # medians: baseline, group
    allowed: Optional[float] = None  # absolute allowance of a deterministic metric

    @property
    def gated(self) -> bool:
        return self.not_gated_because is None

    @property
    def worse(self) -> bool:
        return self.change < 0 if self.higher_is_better else self.change > 0

    @property
    def cost_change(self) -> float:
        """The change as a factor on what the metric costs, minus one, in whichever
        direction it moved: a throughput halved is +100%, as a latency doubled is, and a
        throughput doubled is +100% as well. A fall can never exceed 100% of the value,
        so judging falls by `change` itself would let a noisy higher-is-better metric
        collapse unflagged (at 34% noise no threshold of 3 x noise is reachable)."""
        ratio = 1 + self.change  # group over baseline
        if ratio <= 0:
            return math.inf
        return max(ratio, 1 / ratio) - 1

    @property
    def verdict(self) -> str:
        if not self.gated:
            return "not gated"
        if self.allowed is not None:
            moved = abs(self.values[1] - self.values[0]) > self.allowed
        else:
            moved = self.cost_change > self.threshold
        if not moved:
            return "same"
        return "regression" if self.worse else "improvement"

    def reason(self) -> str:
        """Why the verdict is what it is, in a few words."""
        if self.allowed is not None:
            return (f"moved {self.values[1] - self.values[0]:+.3g}, allowed "
                    f"{self.allowed:.3g}")
        return f"{self.cost_change:.1%} in cost, threshold {self.threshold:.1%}"


@dataclass
class ContextHistory:
    """The runs of one context (hardware, model, dtype, smoke), grouped and compared."""

    context: dict
    groups: list[str]  # oldest first
    runs: dict  # group -> list of Run
    stats: dict = field(default_factory=dict)  # (benchmark, metric) -> {group: GroupStats}
    comparisons: list = field(default_factory=list)

    def label(self) -> str:
        c = self.context
        kind = "smoke run" if c.get("ascend.smoke") else "hardware run"
        return (f"{c.get('ascend.device_kind')} {c.get('ascend.device_name')} | model "
                f"{c.get('ascend.model')} | {c.get('ascend.dtype')} | {kind}")


@dataclass
class History:
    group_by: str
    metrics: tuple
    contexts: list
    skipped: list
    steps: Optional[object] = None  # history.steps.StepReport: the second view, along nights

    @property
    def regressions(self) -> list:
        return [c for ctx in self.contexts for c in ctx.comparisons if c.verdict == "regression"]

    @property
    def step_regressions(self) -> list:
        """Steps that made a metric worse, in hardware contexts (a smoke run's are shown)."""
        return [] if self.steps is None else [s for s in self.steps.regressions if s.gated]

    @property
    def unknown_runs(self) -> int:
        """Runs without the grouping key: named `unknown`, never compared as a version."""
        return sum(len(ctx.runs.get(UNKNOWN, ())) for ctx in self.contexts)


def build_history(
    runs: list[Run],
    *,
    group_by: str = DEFAULT_GROUP_BY,
    metrics: Iterable[str] = DEFAULT_METRICS,
    baseline: Optional[str] = None,
    min_change: float = 0.15,
    noise_factor: float = 3.0,
    skipped: Optional[list] = None,
) -> History:
    """Group `runs` by `group_by` within each context and compare every group with its
    baseline (`baseline`, else the group before it)."""
    if not runs:
        raise HistoryError("no pytest-ascend benchmark runs found: save some with pytest "
                           "--benchmark-autosave (or --benchmark-json) first")
    metrics = tuple(metrics)
    by_context: dict = {}
    for run in runs:
        key = tuple((k, run.lookup(k)) for k in CONTEXT_KEYS if k != group_by)
        by_context.setdefault(key, []).append(run)
    contexts = [_context_history(dict(key), members, group_by, metrics, baseline, min_change,
                                 noise_factor) for key, members in by_context.items()]
    if baseline is not None and not any(baseline in c.groups for c in contexts):
        known = sorted({g for c in contexts for g in c.groups})
        raise HistoryError(f"--baseline {baseline!r} is not a group; the groups by {group_by} "
                           f"are: {', '.join(known)}")
    from pytest_ascend.history.steps import find_steps

    return History(group_by, metrics, contexts, list(skipped or []), find_steps(runs, metrics))


UNKNOWN = "unknown"


def group_name(run: Run, group_by: str) -> str:
    value = run.lookup(group_by)
    return UNKNOWN if value is None else str(value)


def _context_history(context: dict, runs: list[Run], group_by: str, metrics: tuple,
                     baseline: Optional[str], min_change: float,
                     noise_factor: float) -> ContextHistory:
    grouped: dict = {}
    for run in sorted(runs, key=lambda r: (r.datetime, r.source)):
        grouped.setdefault(group_name(run, group_by), []).append(run)
    groups = list(grouped)  # insertion order = first run's date: oldest first
    history = ContextHistory(context, groups, grouped)
    names = sorted({b.get("fullname") or b.get("name") for r in runs for b in r.benchmarks})
    for name in names:
        for metric in metrics:
            per_group = {g: s for g in groups
                         if (s := _group_stats(grouped[g], name, metric)) is not None}
            if per_group:
                history.stats[(name, metric)] = per_group
    for (name, metric), per_group in history.stats.items():
        for index, group in enumerate(groups):
            base = baseline if baseline is not None else (groups[index - 1] if index else None)
            if base is None or base == group or base not in per_group or group not in per_group:
                continue
            history.comparisons.append(_compare(name, metric, group, base, per_group[group],
                                                per_group[base], min_change, noise_factor,
                                                smoke=bool(context.get("ascend.smoke"))))
    return history


def _group_stats(runs: list[Run], name: str, metric: str) -> Optional[GroupStats]:
    samples: list[float] = []
    present = 0
    interval = None
    for run in runs:  # oldest first: the newest run's interval is kept
        bench = next((b for b in run.benchmarks if (b.get("fullname") or b.get("name")) == name),
                     None)
        if bench is None:
            continue
        values = metric_samples(bench, metric)
        if values:
            present += 1
            samples += values
            interval = _interval(bench, metric) or interval
    if not samples:
        return None
    return GroupStats(tuple(samples), present, interval)


def _interval(bench: dict, metric: str) -> Optional[tuple[float, float]]:
    found = (bench.get("extra_info") or {}).get(f"{metric}_interval")
    if isinstance(found, (list, tuple)) and len(found) == 2 and all(map(finite_number, found)):
        return float(found[0]), float(found[1])
    return None


def metric_samples(bench: dict, metric: str) -> list[float]:
    """A benchmark's values of `metric`: its rounds where the run kept them, else its one
    value.

    `time` gives its rounds' times in seconds when the run kept them (`stats.data`), else
    their median; an extra_info metric gives its own rounds when the run recorded them
    (`extra_info["rounds"][metric]`), else its one value.
    """
    stats = bench.get("stats") or {}
    extra = bench.get("extra_info") or {}
    rounds = stats.get("data") if metric == "time" else (extra.get("rounds") or {}).get(metric)
    if rounds:
        return [float(x) for x in rounds if finite_number(x)]
    value = stats.get("median") if metric == "time" else extra.get(metric)
    return [float(value)] if finite_number(value) else []


SMOKE_NOT_GATED = "smoke run: the built-in tiny model's performance is reported, not judged"
TOO_FEW_NOT_GATED = "too few rounds and runs to know its noise"
UNKNOWN_NOT_GATED = ("the runs do not say their version: nights of unknown versions are not "
                     "pooled into one; their steps are judged along the nights")


def _compare(name: str, metric: str, group: str, base: str, now: GroupStats, then: GroupStats,
             min_change: float, noise_factor: float, smoke: bool) -> Comparison:
    if then.median:
        change = (now.median - then.median) / abs(then.median)
    else:
        change = 0.0 if now.median == then.median else math.copysign(math.inf, now.median)
    # A group too new to know its own noise (the first night of a new version) is judged
    # against the baseline's noise alone; its one value stands for its level.
    noise = (now.noise + then.noise) / 2 if now.gated else then.noise
    if metric in JUDGED_ELSEWHERE:
        return Comparison(name, metric, group, base, change, math.inf, higher_is_better(metric),
                          not_gated_because=JUDGED_ELSEWHERE[metric],
                          values=(then.median, now.median))
    rule = DETERMINISTIC_METRICS.get(metric)
    if rule is not None:
        allowed = max(rule.allowed(then.median), noise_factor * noise * abs(then.median))
        return Comparison(name, metric, group, base, change, allowed / abs(then.median)
                          if then.median else math.inf, higher_is_better(metric),
                          values=(then.median, now.median), allowed=allowed)
    if UNKNOWN in (group, base):
        why: Optional[str] = UNKNOWN_NOT_GATED
    elif smoke:
        why = SMOKE_NOT_GATED
    else:
        why = None if then.gated else TOO_FEW_NOT_GATED
    return Comparison(name, metric, group, base, change, max(min_change, noise_factor * noise),
                      higher_is_better(metric), not_gated_because=why,
                      values=(then.median, now.median))
