"""The history gate on synthetic runs: its threshold at and either side of max(min_change,
noise_factor x noise), with noise it measures itself; when a group is too thin to judge;
the deterministic allowances; and the rules that hold for any change (hypothesis): the gate
is symmetric in cost, and direction decides regression against improvement."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_ascend.history.gate import (
    DEFAULT_METRICS,
    DETERMINISTIC_METRICS,
    JUDGED_ELSEWHERE,
    SMOKE_NOT_GATED,
    TOO_FEW_NOT_GATED,
    UNKNOWN_NOT_GATED,
    Comparison,
    DeterministicRule,
    GroupStats,
    build_history,
    group_name,
    higher_is_better,
)
from pytest_ascend.history.runs import HistoryError, Run
from pytest_ascend.history.steps import find_steps

BENCH = "tests/perf/t.py::test_x"
# Rounds with median 8, quartiles 7 and 9: a relative IQR (noise) of exactly 0.25, so the
# threshold is max(0.15, 3 x 0.25) = 0.75 and every figure below is exact in binary.
ROUNDS = [6.0, 7.0, 8.0, 9.0, 10.0]


def run(group, day, metrics, *, smoke=False, device="Ascend910B1", time=None, name=BENCH):
    """A run of one benchmark under CANN `group` on day `day`: `metrics` maps an extra_info
    metric to its rounds (a list) or its single value; `time` the stats.data rounds."""
    extra, rounds = {}, {}
    for metric, value in metrics.items():
        if isinstance(value, list):
            rounds[metric] = value
            extra[metric] = value[len(value) // 2]
        else:
            extra[metric] = value
    if rounds:
        extra["rounds"] = rounds
    stats = {"median": 1.0} if time is None else {"median": time[len(time) // 2], "data": time}
    ascend = {"cann": group, "device_kind": "npu", "device_name": device, "model": "Qwen",
              "dtype": "float16", "smoke": smoke}
    return Run(f"{group}-{day}.json", f"2026-11-{day:02d}T00:00:00", {"ascend": ascend},
               [{"name": "test_x", "fullname": name, "stats": stats, "extra_info": extra}])


def scaled(factor, values=ROUNDS):
    return [v * factor for v in values]


def verdicts(runs, **kwargs):
    history = build_history(runs, **kwargs)
    return {(c.metric, c.group, c.baseline): c.verdict
            for ctx in history.contexts for c in ctx.comparisons}


def two_groups(metric, factor, **kwargs):
    """Two runs per group, each with ROUNDS (x factor in the second group)."""
    runs = [run("8.0", d, {metric: scaled(1.0)}) for d in (1, 2)] + \
        [run("8.1", d, {metric: scaled(factor)}) for d in (3, 4)]
    return verdicts(runs, metrics=[metric], **kwargs)[(metric, "8.1", "8.0")]


@pytest.mark.parametrize("factor, expected", [
    (1.5, "same"),  # 50% in cost: far above min_change, inside 3 x noise
    (1.75, "same"),  # exactly at the threshold: not more than it
    (2.0, "regression"),  # 100% > 75%
    (0.625, "same"),  # 60% in cost the good way
    (0.5, "improvement"),
])
def test_the_gate_at_and_either_side_of_its_noise_threshold(factor, expected):
    assert two_groups("tpot_ms", factor) == expected


@pytest.mark.parametrize("factor, expected", [
    (0.625, "same"), (0.5, "regression"), (2.0, "improvement")])
def test_a_throughput_is_judged_by_its_cost_the_other_way(factor, expected):
    assert two_groups("output_tokens_per_s", factor) == expected


def test_noise_widens_the_threshold_only_above_min_change():
    """Quiet rounds (noise 0.025, 3 x noise 0.075): min_change 0.15 decides."""
    quiet = [7.8, 7.9, 8.0, 8.1, 8.2]
    runs = [run("8.0", d, {"tpot_ms": quiet}) for d in (1, 2)] + \
        [run("8.1", d, {"tpot_ms": scaled(1.25, quiet)}) for d in (3, 4)]
    history = build_history(runs, metrics=["tpot_ms"])
    (comparison,) = history.contexts[0].comparisons
    assert comparison.threshold == pytest.approx(0.15) and comparison.verdict == "regression"
    assert comparison.change == pytest.approx(0.25)
    assert history.regressions == [comparison]
    assert two_groups("tpot_ms", 1.5, min_change=0.6, noise_factor=1.0) == "same"
    assert two_groups("tpot_ms", 1.75, min_change=0.6, noise_factor=1.0) == "regression"


def test_the_threshold_is_the_mean_of_both_groups_noise():
    runs = [run("8.0", d, {"tpot_ms": ROUNDS}) for d in (1, 2)] + \
        [run("8.1", d, {"tpot_ms": [8.0] * 5}) for d in (3, 4)]
    (comparison,) = build_history(runs, metrics=["tpot_ms"]).contexts[0].comparisons
    assert comparison.threshold == pytest.approx(3 * (0.25 + 0.0) / 2)
    assert comparison.values == (8.0, 8.0) and comparison.change == 0.0


def test_group_stats_quartiles_noise_and_when_they_are_enough():
    stats = GroupStats(tuple(ROUNDS), runs=2)
    assert (stats.q1, stats.median, stats.q3, stats.noise) == (7.0, 8.0, 9.0, 0.25)
    assert stats.gated
    assert not GroupStats(tuple(ROUNDS), runs=1).gated  # one run: no run-to-run noise
    assert not GroupStats((1.0, 2.0), runs=2).gated  # two values are no spread
    assert GroupStats((1.0, 2.0, 3.0), runs=2).gated  # the least that is enough
    assert GroupStats((0.0, 0.0, 0.0), runs=2).noise == 0.0


@pytest.mark.parametrize("per_run", [
    [[8.0, 9.0, 7.0]],  # one run, three rounds
    [8.0, 8.5],  # two runs, one value each
])
def test_a_group_too_thin_to_know_its_noise_is_reported_not_gated(per_run):
    runs = [run("8.0", i + 1, {"tpot_ms": v}) for i, v in enumerate(per_run)] + \
        [run("8.1", i + 5, {"tpot_ms": v if isinstance(v, float) else scaled(3.0, v)})
         for i, v in enumerate(per_run)]
    (comparison,) = build_history(runs, metrics=["tpot_ms"]).contexts[0].comparisons
    assert comparison.verdict == "not gated" and not comparison.gated
    assert comparison.not_gated_because == TOO_FEW_NOT_GATED


def test_the_baseline_must_know_its_noise():
    runs = [run("8.0", 1, {"tpot_ms": ROUNDS})] + \
        [run("8.1", d, {"tpot_ms": scaled(3.0)}) for d in (3, 4)]
    (comparison,) = build_history(runs, metrics=["tpot_ms"]).contexts[0].comparisons
    assert comparison.not_gated_because == TOO_FEW_NOT_GATED


@pytest.mark.parametrize("value, expected", [(8.0 * 1.98, "regression"), (8.0 * 1.7, "same"),
                                             (8.0 * 1.76, "regression")])
def test_the_first_night_of_a_new_version_is_judged_by_the_previous_versions_noise(value,
                                                                                  expected):
    """One run of a new CANN version, one value: judged at once against the old version's own
    noise (threshold 3 x 0.25), not left for the second night."""
    runs = [run("8.0", d, {"tpot_ms": scaled(1.0)}) for d in (1, 2)] + \
        [run("8.1", 3, {"tpot_ms": value})]
    (comparison,) = build_history(runs, metrics=["tpot_ms"]).contexts[0].comparisons
    assert comparison.gated and comparison.threshold == 0.75
    assert comparison.verdict == expected


def test_runs_of_unknown_version_are_named_never_pooled_into_a_pass():
    unknown = [run(None, d, {"tpot_ms": scaled(1.0 if d < 3 else 3.0)}) for d in (1, 2, 3, 4)]
    runs = [run("8.0", d + 10, {"tpot_ms": scaled(1.0)}) for d in (1, 2)] + unknown
    history = build_history(runs, metrics=["tpot_ms"])
    assert history.contexts[0].groups == ["unknown", "8.0"] and history.unknown_runs == 4
    (comparison,) = history.contexts[0].comparisons
    assert comparison.not_gated_because == UNKNOWN_NOT_GATED and not comparison.gated


def test_smoke_runs_are_reported_not_gated_but_their_numerics_are():
    runs = [run("8.0", d, {"tpot_ms": ROUNDS, "perplexity": 100.0}, smoke=True)
            for d in (1, 2)] + \
        [run("8.1", d, {"tpot_ms": scaled(3.0), "perplexity": 110.0}, smoke=True)
         for d in (3, 4)]
    found = {c.metric: c for c in build_history(runs).contexts[0].comparisons}
    assert found["tpot_ms"].verdict == "not gated"
    assert found["tpot_ms"].not_gated_because == SMOKE_NOT_GATED
    assert found["perplexity"].verdict == "regression"


@pytest.mark.parametrize("metric, before, after, expected", [
    ("perplexity", 100.0, 101.0, "same"),  # 1% allowed: at it
    ("perplexity", 100.0, 101.5, "regression"),
    ("perplexity", 100.0, 98.0, "improvement"),
    ("token_agreement", 0.97, 0.95, "same"),  # 0.03 absolute allowed
    ("token_agreement", 0.97, 0.93, "regression"),
    ("golden_kl_mean", 0.0, 1e-6, "same"),
    ("golden_kl_mean", 0.0, 2e-6, "regression"),
    ("golden_kl_mean", 1e-3, 1.9e-3, "same"),  # 100% allowed
    ("golden_kl_mean", 1e-3, 2.1e-3, "regression"),
])
def test_deterministic_metrics_move_by_their_fixed_allowance_on_one_run(metric, before, after,
                                                                         expected):
    runs = [run("8.0", 1, {metric: before}), run("8.1", 2, {metric: after})]
    (comparison,) = build_history(runs, metrics=[metric]).contexts[0].comparisons
    assert comparison.verdict == expected
    rule = DETERMINISTIC_METRICS[metric]
    assert comparison.allowed == rule.allowed(before)
    assert comparison.threshold == (comparison.allowed / before if before else math.inf)
    assert comparison.reason() == (f"moved {after - before:+.3g}, allowed "
                                   f"{comparison.allowed:.3g}")


def test_a_deterministic_metric_whose_runs_disagree_is_allowed_their_spread():
    """Perplexities 90..110 within each group: noise 0.1, allowed 3 x 0.1 x 100 = 30."""
    spread = [90.0, 95.0, 100.0, 105.0, 110.0]
    runs = [run("8.0", 1, {"perplexity": spread}),
            run("8.1", 2, {"perplexity": scaled(1.2, spread)})]
    (comparison,) = build_history(runs, metrics=["perplexity"]).contexts[0].comparisons
    assert comparison.allowed == pytest.approx(30.0) and comparison.verdict == "same"


def test_deterministic_rule_takes_the_larger_allowance():
    rule = DeterministicRule(relative=0.1, absolute=0.5)
    assert rule.allowed(10.0) == 1.0 and rule.allowed(-10.0) == 1.0 and rule.allowed(1.0) == 0.5


@pytest.mark.parametrize("metric", [
    "output_tokens_per_s", "roofline_fraction", "decode_bandwidth_gb_s", "prefill_tflops",
    "speedup", "scaling_vs_batch1", "hit_rate", "acceptance_rate", "tokens_saved",
    "mean_accepted_length", "token_agreement", "peak_goodput_per_s", "accuracy"])
def test_higher_is_better(metric):
    assert higher_is_better(metric)


@pytest.mark.parametrize("metric", ["time", "ttft_ms", "tpot_ms", "perplexity",
                                    "golden_kl_mean", "speedup_ms", "hit_rate_low_ms"])
def test_lower_is_better(metric):
    assert not higher_is_better(metric)


def test_cost_change_is_a_factor_either_way_and_a_collapse_is_infinite():
    def cost(change):
        return Comparison("b", "m", "g", "base", change, 0.5, False).cost_change

    assert cost(1.0) == 1.0 and cost(-0.5) == 1.0 and cost(0.0) == 0.0
    assert cost(-1.0) == math.inf and cost(-2.0) == math.inf


def test_a_comparison_says_why_in_a_few_words():
    c = Comparison("b", "tpot_ms", "8.1", "8.0", 0.5, 0.25, False)
    assert c.reason() == "50.0% in cost, threshold 25.0%"
    assert c.verdict == "regression" and c.worse and c.gated
    assert Comparison("b", "m", "g", "base", 0.5, 0.25, False,
                      not_gated_because="why").verdict == "not gated"


@given(st.floats(-0.99, 20.0), st.floats(0.0, 5.0))
def test_the_gate_is_symmetric_in_cost(change, threshold):
    """A latency x(1+c) and a throughput /(1+c) cost the same and get the same verdict;
    the same change read backwards (baseline and group swapped) is the opposite verdict."""
    latency = Comparison("b", "ttft_ms", "g", "base", change, threshold, False)
    throughput = Comparison("b", "x_per_s", "g", "base", 1 / (1 + change) - 1, threshold, True)
    assert latency.cost_change == pytest.approx(throughput.cost_change)
    if not math.isclose(latency.cost_change, threshold, rel_tol=1e-9):
        assert latency.verdict == throughput.verdict
        backwards = Comparison("b", "ttft_ms", "base", "g", 1 / (1 + change) - 1, threshold,
                               False)
        opposite = {"regression": "improvement", "improvement": "regression", "same": "same"}
        assert backwards.verdict == opposite[latency.verdict]


@given(st.floats(0.0, 20.0), st.floats(0.0, 5.0))
def test_a_slower_latency_is_never_an_improvement(change, threshold):
    assert Comparison("b", "ttft_ms", "g", "base", change, threshold, False).verdict != \
        "improvement"
    assert Comparison("b", "x_per_s", "g", "base", -change / (1 + change), threshold,
                      True).verdict != "improvement"


def test_time_is_judged_by_its_stats_rounds_else_its_median():
    runs = [run("8.0", d, {}, time=ROUNDS) for d in (1, 2)] + \
        [run("8.1", d, {}, time=scaled(2.0)) for d in (3, 4)]
    history = build_history(runs, metrics=["time"])
    stats = history.contexts[0].stats[(BENCH, "time")]
    assert stats["8.0"].samples == tuple(ROUNDS * 2) and stats["8.0"].runs == 2
    assert history.contexts[0].comparisons[0].verdict == "regression"
    bare = [run("8.0", 1, {})]
    assert build_history(bare, metrics=["time"]).contexts[0].stats[(BENCH, "time")][
        "8.0"].samples == (1.0,)


def test_non_finite_samples_and_missing_metrics_are_left_out():
    runs = [run("8.0", 1, {"tpot_ms": [1.0, math.nan, 2.0, math.inf, 3.0]}),
            run("8.0", 2, {"ttft_ms": 5.0})]
    history = build_history(runs, metrics=["tpot_ms", "ttft_ms", "hit_rate"])
    stats = history.contexts[0].stats
    assert stats[(BENCH, "tpot_ms")]["8.0"] == GroupStats((1.0, 2.0, 3.0), 1)
    assert stats[(BENCH, "ttft_ms")]["8.0"] == GroupStats((5.0,), 1)
    assert (BENCH, "hit_rate") not in stats


def test_a_benchmark_missing_from_a_run_is_not_counted_as_a_run():
    runs = [run("8.0", 1, {"tpot_ms": ROUNDS}), run("8.0", 2, {"tpot_ms": ROUNDS}, name="other")]
    stats = build_history(runs, metrics=["tpot_ms"]).contexts[0].stats
    assert stats[(BENCH, "tpot_ms")]["8.0"].runs == 1


def test_groups_are_ordered_by_date_and_compared_with_the_one_before():
    runs = [run("8.2", 9, {"tpot_ms": scaled(1.0)}), run("8.2", 8, {"tpot_ms": scaled(1.0)}),
            run("8.0", 1, {"tpot_ms": scaled(1.0)}), run("8.0", 2, {"tpot_ms": scaled(1.0)}),
            run("8.1", 5, {"tpot_ms": scaled(3.0)}), run("8.1", 4, {"tpot_ms": scaled(3.0)})]
    history = build_history(runs, metrics=["tpot_ms"])
    context = history.contexts[0]
    assert context.groups == ["8.0", "8.1", "8.2"]
    assert [r.source for r in context.runs["8.2"]] == ["8.2-8.json", "8.2-9.json"]
    assert verdicts(runs, metrics=["tpot_ms"]) == {
        ("tpot_ms", "8.1", "8.0"): "regression", ("tpot_ms", "8.2", "8.1"): "improvement"}
    assert verdicts(runs, metrics=["tpot_ms"], baseline="8.2") == {
        ("tpot_ms", "8.0", "8.2"): "same", ("tpot_ms", "8.1", "8.2"): "regression"}


def test_contexts_never_mix_and_carry_their_label():
    runs = [run("8.0", 1, {"tpot_ms": 1.0}), run("8.1", 2, {"tpot_ms": 9.0}, smoke=True),
            run("8.1", 3, {"tpot_ms": 9.0}, device="Ascend910B3")]
    history = build_history(runs, metrics=["tpot_ms"])
    assert len(history.contexts) == 3
    assert all(not c.comparisons for c in history.contexts)
    labels = sorted(c.label() for c in history.contexts)
    assert labels == ["npu Ascend910B1 | model Qwen | float16 | hardware run",
                      "npu Ascend910B1 | model Qwen | float16 | smoke run",
                      "npu Ascend910B3 | model Qwen | float16 | hardware run"]
    assert history.group_by == "ascend.cann" and history.metrics == ("tpot_ms",)


def test_a_median_of_zero_has_an_infinite_or_no_change():
    def change(after):
        runs = [run("8.0", 1, {"golden_kl_mean": 0.0}), run("8.1", 2, {"golden_kl_mean": after})]
        return build_history(runs, metrics=["golden_kl_mean"]).contexts[0].comparisons[0]

    assert change(0.0).change == 0.0 and change(0.0).threshold == math.inf
    assert change(1.0).change == math.inf and change(-1.0).change == -math.inf


def test_nothing_to_compare_and_an_unknown_baseline_are_errors_in_words():
    with pytest.raises(HistoryError, match="no pytest-ascend benchmark runs found: save some "
                                           "with pytest --benchmark-autosave"):
        build_history([])
    runs = [run("8.1", 2, {"tpot_ms": 1.0}), run("8.0", 1, {"tpot_ms": 1.0})]
    with pytest.raises(HistoryError) as refused:
        build_history(runs, baseline="7.0")
    assert str(refused.value) == ("--baseline '7.0' is not a group; the groups by ascend.cann "
                                  "are: 8.0, 8.1")


def test_group_name_and_another_group_by_key():
    runs = [run("8.0", 1, {"tpot_ms": 1.0})]
    assert group_name(runs[0], "ascend.cann") == "8.0"
    assert group_name(runs[0], "ascend.torch_npu") == "unknown"
    history = build_history(runs, group_by="ascend.torch_npu", metrics=["tpot_ms"],
                            skipped=["bad.json: not JSON"])
    assert history.contexts[0].groups == ["unknown"] and history.skipped == ["bad.json: not JSON"]
    assert history.contexts[0].context["ascend.device_name"] == "Ascend910B1"


def test_each_comparison_names_its_benchmark_group_and_baseline():
    runs = [run("8.0", 1, {"tpot_ms": 1.0, "perplexity": 5.0}),
            run("8.1", 2, {"tpot_ms": 1.0, "perplexity": 5.0})]
    comparisons = build_history(runs, metrics=["tpot_ms", "perplexity"]).contexts[0].comparisons
    assert {(c.benchmark, c.metric, c.group, c.baseline) for c in comparisons} == {
        (BENCH, "tpot_ms", "8.1", "8.0"), (BENCH, "perplexity", "8.1", "8.0")}


def test_a_benchmark_without_a_fullname_goes_by_its_name():
    runs = [run("8.0", d, {"tpot_ms": ROUNDS}) for d in (1, 2)]
    for r in runs:
        del r.benchmarks[0]["fullname"]
    stats = build_history(runs, metrics=["tpot_ms"]).contexts[0].stats
    assert stats[("test_x", "tpot_ms")]["8.0"].runs == 2


def test_a_run_without_the_benchmark_does_not_hide_the_runs_after_it():
    runs = [run("8.0", 1, {"tpot_ms": ROUNDS}, name="other"), run("8.0", 2, {"tpot_ms": ROUNDS}),
            run("8.0", 3, {"tpot_ms": ROUNDS})]
    stats = build_history(runs, metrics=["tpot_ms"]).contexts[0].stats
    assert stats[(BENCH, "tpot_ms")]["8.0"].runs == 2


@pytest.mark.parametrize("factor, expected", [(2.0, "regression"), (0.4, "improvement")])
def test_energy_per_token_is_judged_by_default_lower_being_better(factor, expected):
    runs = [run("8.0", d, {"energy_per_token_j": ROUNDS}) for d in (1, 2)] + \
        [run("8.1", d, {"energy_per_token_j": scaled(factor)}) for d in (3, 4)]
    assert verdicts(runs)[("energy_per_token_j", "8.1", "8.0")] == expected


def test_accuracy_is_shown_with_its_interval_and_judged_elsewhere():
    """The paired McNemar test in the run judges accuracy; the history reports it, with the
    newest run's interval, even when it fell by half."""
    def accuracy_run(group, day, value, interval):
        made = run(group, day, {"accuracy": value})
        made.benchmarks[0]["extra_info"]["accuracy_interval"] = interval
        return made

    runs = [accuracy_run("8.0", 1, 0.8, [0.70, 0.88]), accuracy_run("8.0", 2, 0.8, [0.71, 0.87]),
            accuracy_run("8.1", 3, 0.4, [0.30, 0.50]), accuracy_run("8.1", 4, 0.4, "bad")]
    history = build_history(runs)
    assert "accuracy" in DEFAULT_METRICS
    stats = history.contexts[0].stats[(BENCH, "accuracy")]
    assert stats["8.0"].interval == (0.71, 0.87) and stats["8.1"].interval == (0.30, 0.50)
    (comparison,) = [c for c in history.contexts[0].comparisons if c.metric == "accuracy"]
    assert comparison.not_gated_because == JUDGED_ELSEWHERE["accuracy"]
    assert comparison.verdict == "not gated" and comparison.change == pytest.approx(-0.5)
    assert comparison.values == (0.8, 0.4) and comparison.higher_is_better
    assert comparison.baseline == "8.0" and comparison.group == "8.1"
    assert comparison.threshold == math.inf
    assert history.regressions == []
    from pytest_ascend.history.render import render_table

    assert "0.8 [0.71, 0.87]" in render_table(history)
    import re

    table = render_table(history)
    (number,) = re.findall(r"0\.4 \[0\.3, 0\.5\] -50\.0% \[(\d)\]", table)
    assert f"[{number}] not gated: paired per question by the run's McNemar test" in table
    plain = build_history([run("8.0", 1, {"ttft_ms": 5.0})], metrics=["ttft_ms"])
    assert plain.contexts[0].stats[(BENCH, "ttft_ms")]["8.0"].interval is None


def test_the_history_carries_the_steps_along_the_nights_inside_one_version():
    wobble = [1.0, 1.01, 0.99, 1.02, 0.98, 1.0]
    runs = [run("8.0", day, {"tpot_ms": scaled((1.0 if day <= 6 else 2.0) * wobble[day % 6])})
            for day in range(1, 13)]
    history = build_history(runs, metrics=["tpot_ms"])
    assert history.regressions == []  # one version: nothing between groups
    assert history.steps == find_steps(runs, ["tpot_ms"])
    (step,) = history.step_regressions
    assert step.after.source == "8.0-7.json" and step.ratio == pytest.approx(2.0, rel=0.05)
