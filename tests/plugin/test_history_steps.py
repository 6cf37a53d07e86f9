"""Steps along the nights (history/steps.py) on synthetic histories of 300 nightly runs: a
planted step at run 200 in one metric is found alone, with the component that changed there;
two steps; a slow drift; pure noise finds nothing; 300 runs x 50 metrics in under 2 s."""

import math
import random
import time

import pytest

from pytest_ascend.history.runs import Run
from pytest_ascend.history.steps import (MIN_SIGMA, changed_facts, drifts, find_steps,
                                         fit_steps, noise_sigma)

BENCH = "tests/perf/test_single_request.py::test_decode"
NOISE = 0.03


def night(index, metrics, *, driver="24.1.rc2", cann="8.0.RC3", host="atlas-01"):
    ascend = {"cann": cann, "driver": driver, "device_kind": "npu", "device_name": "910B3",
              "model": "Qwen2.5-14B-Instruct", "dtype": "float16", "smoke": False,
              "copy_gb_s": 1500.0 + index}  # a measured figure: never a "changed fact"
    day = f"2026-{1 + index // 28:02d}-{1 + index % 28:02d}T02:00:00"
    return Run(f"run-{index:03d}.json", day, {"node": host, "ascend": ascend},
               [{"name": "test_decode", "fullname": BENCH, "stats": {"median": 1.0},
                 "extra_info": dict(metrics)}])


def history(levels, *, seed=0, metrics=("tpot_ms",), step_metric="tpot_ms", driver_from=None):
    """300 nights (or len(levels)): `step_metric` follows `levels`, every other metric sits
    at 10 with the same noise; the driver changes from run `driver_from` on."""
    rng = random.Random(seed)
    runs = []
    for index, level in enumerate(levels):
        values = {m: (level if m == step_metric else 10.0) * math.exp(rng.gauss(0, NOISE))
                  for m in metrics}
        changed = driver_from is not None and index >= driver_from
        runs.append(night(index, values, driver="24.1.rc3" if changed else "24.1.rc2"))
    return runs


def test_a_step_at_run_200_of_300_is_found_alone_with_what_changed_there():
    levels = [10.0] * 200 + [12.0] * 100
    metrics = ("tpot_ms", "ttft_ms", "output_tokens_per_s", "time")
    report = find_steps(history(levels, metrics=metrics, driver_from=200), metrics)
    assert report.series == 4 and report.too_short == 0
    (step,) = report.steps
    assert (step.metric, step.index) == ("tpot_ms", 200)
    assert step.before.source == "run-199.json" and step.after.source == "run-200.json"
    assert step.ratio == pytest.approx(1.2, abs=0.02)
    assert step.ratio_low < step.ratio < step.ratio_high
    assert step.ratio_low > 1.15 and step.ratio_high < 1.25
    assert step.regression and step.changed == (("ascend.driver", "24.1.rc2", "24.1.rc3"),)
    assert "tpot_ms +20" in step.describe() and "ascend.driver 24.1.rc2 -> 24.1.rc3" in \
        step.describe()
    assert report.regressions == [step] and report.drifts == []


def test_two_steps_are_both_found_in_place():
    levels = [10.0] * 100 + [12.5] * 120 + [10.0] * 80
    report = find_steps(history(levels, seed=1), ["tpot_ms"])
    assert [s.index for s in report.steps] == [100, 220]
    assert [s.ratio for s in report.steps] == [pytest.approx(1.25, abs=0.03),
                                               pytest.approx(0.8, abs=0.03)]
    assert [s.regression for s in report.steps] == [True, False]
    assert report.drifts == []


def test_a_slow_drift_is_steps_one_way_and_reported_as_a_drift():
    levels = [10.0] * 50 + [10.0 * (1 + 0.3 * i / 200) for i in range(200)] + [13.0] * 50
    report = find_steps(history(levels, seed=2), ["tpot_ms"])
    assert len(report.steps) >= 2 and all(s.ratio > 1 for s in report.steps)
    (drift,) = report.drifts
    assert drift.ratio == pytest.approx(1.3, abs=0.08)
    assert drift.describe().startswith(f"tpot_ms drifted +{drift.ratio - 1:.1%} in "
                                       f"{len(report.steps)} steps between run-")


@pytest.mark.parametrize("seed", range(6))
def test_pure_noise_has_no_step(seed):
    report = find_steps(history([10.0] * 300, seed=seed, metrics=("tpot_ms", "ttft_ms")),
                        ["tpot_ms", "ttft_ms"])
    assert report.steps == [] and report.series == 2


def test_one_odd_night_is_not_a_step():
    levels = [10.0] * 150 + [20.0] + [10.0] * 149
    assert find_steps(history(levels, seed=3), ["tpot_ms"]).steps == []


def test_a_throughput_that_falls_is_a_regression_and_a_short_series_is_counted():
    levels = [100.0] * 40 + [70.0] * 20
    runs = history(levels, seed=4, metrics=("output_tokens_per_s",),
                   step_metric="output_tokens_per_s")
    (step,) = find_steps(runs, ["output_tokens_per_s"]).steps
    assert step.regression and step.ratio == pytest.approx(0.7, abs=0.03)
    short = find_steps(runs[:5], ["output_tokens_per_s"])
    assert short.steps == [] and short.too_short == 1


def test_300_runs_of_50_metrics_in_under_2_seconds():
    metrics = [f"metric_{i}_ms" for i in range(50)]
    runs = history([10.0] * 200 + [13.0] * 100, metrics=metrics, step_metric="metric_7_ms")
    started = time.perf_counter()
    report = find_steps(runs, metrics)
    elapsed = time.perf_counter() - started
    assert report.series == 50 and [(s.metric, s.index) for s in report.steps] == \
        [("metric_7_ms", 200)]
    assert elapsed < 2.0, f"{elapsed:.2f} s"


def test_noise_sigma_is_robust_to_the_step_itself():
    rng = random.Random(5)
    logs = [rng.gauss(0, 0.02) for _ in range(200)] + [0.5 + rng.gauss(0, 0.02)
                                                        for _ in range(100)]
    assert noise_sigma(logs) == pytest.approx(0.02, rel=0.25)
    assert noise_sigma([1.0] * 10) == MIN_SIGMA and noise_sigma([1.0]) == MIN_SIGMA


def test_changed_facts_are_strings_only_and_name_both_sides():
    before = night(1, {}, host="atlas-01")
    after = night(2, {}, cann="8.1.RC1", host="atlas-02")
    assert changed_facts(before, after) == (("ascend.cann", "8.0.RC3", "8.1.RC1"),
                                            ("node", "atlas-01", "atlas-02"))


def test_a_deterministic_figure_that_moves_once_is_a_step():
    runs = [night(i, {"perplexity": 5.0 if i < 20 else 5.2}) for i in range(40)]
    (step,) = fit_steps(runs, [5.0 if i < 20 else 5.2 for i in range(40)], context="c",
                        benchmark=BENCH, metric="perplexity", higher_is_better=False)
    assert step.index == 20 and step.ratio == pytest.approx(1.04)
    assert drifts([step]) == []


def write_runs(folder, runs):
    """Each run as a --benchmark-json file the history command reads."""
    import json

    folder.mkdir()
    paths = []
    for run in runs:
        path = folder / run.source
        path.write_text(json.dumps({"machine_info": run.machine_info, "datetime": run.datetime,
                                    "benchmarks": run.benchmarks}))
        paths.append(path)
    return paths


def history_command(paths, *args):
    import subprocess
    import sys

    argv = [sys.executable, "-m", "pytest_ascend", "history", *args]
    for path in paths:
        argv += ["--json", str(path)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120)


def test_a_regression_inside_one_cann_version_fails_the_nightly_gate_as_a_step(tmp_path):
    """Blind spot: a 2x TPOT step with CANN unchanged merged into the version's median and
    printed "0 regression(s)". The step view finds it and names the driver."""
    levels = [10.0] * 40 + [20.0] * 8
    paths = write_runs(tmp_path / "runs", history(levels, seed=6, driver_from=40))
    done = history_command(paths, "--fail-on-regression", "--metric", "tpot_ms")
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
    assert "0 regression(s)" in done.stdout  # the version groups: one version, nothing to see
    (line,) = [l for l in done.stdout.splitlines() if l.startswith("STEP REGRESSION")]
    import re

    low, high = map(float, re.search(r"tpot_ms \+[\d.]+% \[\+([\d.]+)%, \+([\d.]+)%\]",
                                     line).groups())
    assert low < 100 < high  # the planted 2x, within the step's interval
    assert "run-039.json" in line and "run-040.json" in line
    assert "ascend.driver 24.1.rc2 -> 24.1.rc3" in line
    assert history_command(paths, "--fail-on-regression", "--metric", "tpot_ms",
                           "--gate", "groups").returncode == 0
    as_json = history_command(paths, "--metric", "tpot_ms", "--format", "json")
    import json

    document = json.loads(as_json.stdout)
    (step,) = document["steps"]
    assert step["index"] == 40 and step["regression"] and step["gated"]
    assert step["changed"] == [{"key": "ascend.driver", "before": "24.1.rc2",
                                "after": "24.1.rc3"}]
    assert document["step_regressions"] == 1
