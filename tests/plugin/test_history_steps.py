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
    after.machine_info["ascend"]["torch_npu"] = "2.1.0.post8"  # newly recorded
    assert changed_facts(before, after) == (("ascend.cann", "8.0.RC3", "8.1.RC1"),
                                            ("ascend.torch_npu", None, "2.1.0.post8"),
                                            ("node", "atlas-01", "atlas-02"))
    step = fit_steps([before] * 3 + [after] * 3, [1.0] * 3 + [2.0] * 3, context="c",
                     benchmark=BENCH, metric="tpot_ms", higher_is_better=False)[0]
    assert step.describe().endswith(": ascend.cann 8.0.RC3 -> 8.1.RC1; ascend.torch_npu None "
                                    "-> 2.1.0.post8; node atlas-01 -> atlas-02")


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
    lines = done.stdout.splitlines()
    (start,) = [i for i, text in enumerate(lines) if text.startswith("STEP REGRESSION")]
    line = lines[start]
    for more in lines[start + 1:]:  # a long line is wrapped at 120 columns
        if not more.startswith("    "):
            break
        line += " " + more.strip()
    assert all(len(text) <= 120 for text in lines)
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


# Each field of a step, drift and report, exactly ----------------------------------------

def plain(values, *, driver_at=None, smoke=False, device="910B3", name_only=False):
    runs = []
    for index, value in enumerate(values):
        made = night(index, {"tpot_ms": value},
                     driver="24.1.rc3" if driver_at is not None and index >= driver_at
                     else "24.1.rc2")
        made.machine_info["ascend"].update(smoke=smoke, device_name=device)
        if name_only:
            del made.benchmarks[0]["fullname"]
        runs.append(made)
    return runs


def test_a_step_carries_both_runs_both_levels_and_its_interval():
    values = [10.0, 10.0, 13.0, 20.0, 20.0, 20.0, 20.0]
    runs = plain(values, driver_at=3)
    (step,) = fit_steps(runs, values, context="ctx", benchmark=BENCH, metric="tpot_ms",
                        higher_is_better=False)
    half = 1.959963984540054 * MIN_SIGMA * math.sqrt(1 / 3 + 1 / 4)
    assert (step.context, step.benchmark, step.metric, step.index) == ("ctx", BENCH, "tpot_ms", 3)
    assert (step.before, step.after) == (runs[2], runs[3])
    assert step.level_before == pytest.approx(10.0) and step.level_after == pytest.approx(20.0)
    assert step.ratio == pytest.approx(2.0)
    assert step.ratio_low == pytest.approx(2.0 * math.exp(-half))
    assert step.ratio_high == pytest.approx(2.0 * math.exp(half))
    assert step.gated and step.regression and not step.higher_is_better
    assert step.describe() == (
        f"tpot_ms +100.0% [{2.0 * math.exp(-half) - 1:+.1%}, {2.0 * math.exp(half) - 1:+.1%}] "
        "regression between run-002.json (2026-01-03T02:00:00) and run-003.json "
        "(2026-01-04T02:00:00): ascend.driver 24.1.rc2 -> 24.1.rc3")
    (smoke,) = fit_steps(plain(values, smoke=True), values, context="c", benchmark=BENCH,
                         metric="tpot_ms", higher_is_better=False)
    assert not smoke.gated


def test_an_improvement_with_no_fact_changed_says_so():
    values = [20.0] * 3 + [10.0] * 3
    runs = plain(values)
    for run in runs[2:]:  # a change a night before the step is not the step's
        run.machine_info["node"] = "atlas-02"
    (step,) = fit_steps(runs, values, context="c", benchmark=BENCH, metric="tpot_ms",
                        higher_is_better=False)
    assert not step.regression and step.changed == ()
    assert step.describe().endswith("improvement between run-002.json (2026-01-03T02:00:00) "
                                    "and run-003.json (2026-01-04T02:00:00): no recorded fact "
                                    "changed")
    (faster,) = fit_steps(plain(values), values, context="c", benchmark=BENCH,
                          metric="output_tokens_per_s", higher_is_better=True)
    assert faster.regression


def test_a_cut_with_no_change_is_dropped_and_the_next_is_kept(monkeypatch):
    from pytest_ascend.history import steps as module

    values = [10.0] * 6 + [15.0] * 3
    monkeypatch.setattr(module, "breakpoints", lambda logs, sigma, beta: [3, 6])
    (step,) = fit_steps(plain(values), values, context="c", benchmark=BENCH, metric="tpot_ms",
                        higher_is_better=False)
    assert step.index == 6 and step.ratio == pytest.approx(1.5)
    seen = []
    monkeypatch.setattr(module, "breakpoints",
                        lambda logs, sigma, beta: seen.append(beta) or [])
    assert fit_steps(plain(values), values, context="c", benchmark=BENCH, metric="tpot_ms",
                     higher_is_better=False, beta=7.5) == [] and seen == [7.5]


def test_drifts_are_runs_of_steps_one_way():
    values = [10.0] * 3 + [12.0] * 3 + [14.0] * 3 + [11.0] * 3 + [9.0] * 3 + [12.0] * 3
    found = fit_steps(plain(values), values, context="ctx", benchmark=BENCH, metric="tpot_ms",
                      higher_is_better=False)
    assert [s.index for s in found] == [3, 6, 9, 12, 15]
    up, down = drifts(found)
    assert up.steps == tuple(found[:2]) and down.steps == tuple(found[2:4])
    assert (up.context, up.benchmark, up.metric) == ("ctx", BENCH, "tpot_ms")
    assert up.ratio == pytest.approx(1.4) and down.ratio == pytest.approx(9 / 14)
    assert up.describe() == ("tpot_ms drifted +40.0% in 2 steps between run-002.json and "
                             "run-006.json")
    assert down.describe() == ("tpot_ms drifted -35.7% in 2 steps between run-008.json and "
                               "run-012.json")
    assert drifts(found[3:]) == [] and drifts([]) == []


def test_a_drift_of_three_steps_runs_from_its_first_to_its_last():
    values = [10.0] * 3 + [12.0] * 3 + [14.0] * 3 + [17.0] * 3
    (drift,) = drifts(fit_steps(plain(values), values, context="ctx", benchmark=BENCH,
                                metric="tpot_ms", higher_is_better=False))
    assert drift.describe() == ("tpot_ms drifted +70.0% in 3 steps between run-002.json and "
                                "run-009.json")


def test_find_steps_fits_each_context_and_benchmark_and_counts_what_it_cannot():
    hardware = plain([10.0] * 3 + [20.0] * 3)  # six runs: just enough
    smoke = plain([10.0] * 3 + [20.0] * 3, smoke=True, device="cpu", name_only=True)
    for run in smoke:
        del run.machine_info["ascend"]["model"]
    short = plain([10.0] * 5, device="910B4")
    report = find_steps(hardware + smoke + short + plain([7.0] * 5, device="910A"),
                        ["tpot_ms", "ttft_ms"])
    assert report.series == 4 and report.too_short == 2
    contexts = sorted((s.context, s.benchmark, s.gated) for s in report.steps)
    assert contexts == [
        ("npu / 910B3 / Qwen2.5-14B-Instruct / float16 / False", BENCH, True),
        ("npu / cpu / float16 / True", "test_decode", False)]
    assert find_steps(hardware, ["tpot_ms"], beta=1e9).steps == []
    after_nothing = find_steps(hardware, ["ttft_ms", "tpot_ms"])  # a metric no run has first
    assert [s.index for s in after_nothing.steps] == [3]
    for run in hardware[:4]:  # a metric too few runs measured, fitted before tpot_ms
        run.benchmarks[0]["extra_info"]["ttft_ms"] = 3.0
    after_short = find_steps(hardware, ["ttft_ms", "tpot_ms"])
    assert after_short.too_short == 1 and [s.metric for s in after_short.steps] == ["tpot_ms"]
    two = find_steps(plain([10.0, 10.0, 10.0, 12.0, 12.0, 12.0, 14.0, 14.0, 14.0]) +
                     plain([10.0, 10.0, 10.0, 12.0, 12.0, 12.0, 14.0, 14.0, 14.0],
                           device="910A"), ["tpot_ms"])
    assert len(two.drifts) == 2


def test_series_values_keep_positive_finite_values_of_runs_that_have_the_benchmark():
    from pytest_ascend.history.gate import metric_samples
    from pytest_ascend.history.steps import series_values

    runs = plain([10.0, 0.0, -1.0, 12.0, float("nan")], name_only=True)
    runs.append(night(9, {"tpot_ms": 5.0}))
    runs[-1].benchmarks[0]["fullname"] = "another"
    kept, values = series_values(runs, "test_decode", "tpot_ms", metric_samples)
    assert [r.source for r in kept] == ["run-000.json", "run-003.json"]
    assert values == [10.0, 12.0]


def test_noise_sigma_measures_spread_around_a_trend():
    trend = [0.01 * i for i in range(50)]
    assert noise_sigma(trend) == MIN_SIGMA  # every night moves the same: no noise
    wobble = [0.0]
    for i in range(50):  # night-to-night moves of 0.01 +- 0, 0.01, 0.02
        wobble.append(wobble[-1] + 0.01 + (-0.02, -0.01, 0.0, 0.01, 0.02)[i % 5])
    assert noise_sigma(wobble) == pytest.approx(1.4826 * 0.01 / math.sqrt(2))


def test_runs_are_named_by_their_file_whatever_the_storage_path():
    from pytest_ascend.history.steps import _name

    for source, name in (("store/Linux-CPython-3.11-64bit/0001_nightly run.json",
                          "0001_nightly run.json"), ("C:\\store\\b\\0002_x.json", "0002_x.json"),
                         ("run-7.json", "run-7.json")):
        assert _name(Run(source, "", {}, [])) == name
