"""The history beside a moved figure: each side's card and the components that differ; and
a throttled region set aside, neither baseline nor regression. Synthetic runs whose telemetry
is planted: a CANN change with a cool card, and a hot, throttled card with no change."""

import dataclasses
import json

from pytest_ascend.cli import main
from pytest_ascend.history.explain import (
    card_medians,
    differing_versions,
    explain,
    explanation_lines,
    set_aside_throttled,
)
from pytest_ascend.history.gate import build_history
from pytest_ascend.history.runs import Run

BENCH = "tests/perf/t.py::test_x"
ROUNDS = [6.0, 7.0, 8.0, 9.0, 10.0]  # relative IQR 0.25: the gate's threshold is 0.75


def card(clock, temperature, power, throttled=False, drop=0.0):
    return {"core_clock_mhz": {"min": clock * (1 - drop), "median": clock, "max": clock},
            "temperature_c": {"min": temperature, "median": temperature, "max": temperature},
            "power_w": {"min": power, "median": power, "max": power},
            "throttled": throttled, "clock_drop": drop, "throttle_reasons": []}


def run(cann, day, factor, telemetry, **versions):
    rounds = [v * factor for v in ROUNDS]
    ascend = {"cann": cann, "device_kind": "npu", "device_name": "Ascend910B1",
              "model": "Qwen", "dtype": "float16", "smoke": False, "torch": "2.5.1",
              "driver": "24.1.0", **versions}
    extra = {"tpot_ms": rounds[2], "rounds": {"tpot_ms": rounds}, "telemetry": telemetry}
    return Run(f"{cann}-{day}.json", f"2026-11-{day:02d}T00:00:00", {"ascend": ascend},
               [{"name": "test_x", "fullname": BENCH, "stats": {"median": 1.0},
                 "extra_info": extra}])


COOL = card(1800, 55, 300)
HOT = card(1200, 92, 310, throttled=True, drop=1 / 3)


def test_a_cann_change_is_named_beside_the_regression_with_both_cards():
    runs = [run("8.0.RC2", 1, 1.0, COOL), run("8.0.RC2", 2, 1.0, COOL),
            run("8.1.RC1", 3, 2.0, COOL, torch="2.6.0"), run("8.1.RC1", 4, 2.0, COOL,
                                                            torch="2.6.0")]
    history = build_history(runs, metrics=("tpot_ms",))
    explained = explain(history)
    assert [(e["verdict"], e["metric"]) for e in explained] == [("regression", "tpot_ms")]
    assert explained[0]["versions"] == ["cann 8.0.RC2 -> 8.1.RC1", "torch 2.5.1 -> 2.6.0"]
    assert explained[0]["group_card"] == {"core_clock_mhz": 1800, "temperature_c": 55,
                                          "power_w": 300}
    assert explanation_lines(explained) == [
        f"beside the regression of {BENCH} tpot_ms:",
        "  card in 8.0.RC2: clock 1800 MHz, temperature 55 C, power 300 W",
        "  card in 8.1.RC1: clock 1800 MHz, temperature 55 C, power 300 W",
        "  versions: cann 8.0.RC2 -> 8.1.RC1; torch 2.5.1 -> 2.6.0"]


def test_a_hot_card_is_visible_beside_a_move_with_no_version_changed():
    runs = [run("a", 1, 1.0, COOL), run("a", 2, 1.0, COOL),
            run("b", 3, 2.0, card(1500, 88, 350)), run("b", 4, 2.0, card(1500, 90, 350))]
    explained = explain(build_history(runs, metrics=("tpot_ms",)))
    assert explained[0]["versions"] == ["cann a -> b"]  # the grouping key itself
    assert explained[0]["group_card"]["temperature_c"] == 89
    assert explained[0]["baseline_card"]["temperature_c"] == 55


def test_a_throttled_region_is_neither_baseline_nor_regression_and_is_said():
    runs = [run("8.0.RC2", 1, 1.0, COOL), run("8.0.RC2", 2, 1.0, COOL),
            run("8.1.RC1", 3, 2.0, HOT), run("8.1.RC1", 4, 2.0, HOT)]
    assert build_history(runs, metrics=("tpot_ms",)).regressions  # without setting aside
    kept, notes = set_aside_throttled(runs)
    assert build_history(kept, metrics=("tpot_ms",)).regressions == []
    assert notes == [f"{BENCH} in 8.1.RC1-{day}.json set aside, neither baseline nor "
                     f"regression: its card throttled (clock -33%; no reason given)"
                     for day in (3, 4)]
    # and a throttled baseline is no baseline: the slow group is not judged against it
    baseline_hot = [dataclasses.replace(r, benchmarks=[
        {**r.benchmarks[0], "extra_info": {**r.benchmarks[0]["extra_info"], "telemetry": HOT}}])
        if r.lookup("ascend.cann") == "8.0.RC2" else r for r in runs]
    kept, _ = set_aside_throttled(baseline_hot)
    assert build_history(kept, metrics=("tpot_ms",)).contexts[0].comparisons == []


def test_runs_without_telemetry_explain_as_unknown():
    bare = run("a", 1, 1.0, None)
    assert card_medians([bare], BENCH) == {"core_clock_mhz": None, "temperature_c": None,
                                           "power_w": None}
    assert differing_versions([bare], [bare]) == []


def test_the_command_prints_the_explanation_and_the_set_aside(tmp_path, capsys):
    files = []
    for index, made in enumerate([run("8.0.RC2", 1, 1.0, COOL), run("8.0.RC2", 2, 1.0, COOL),
                                  run("8.1.RC1", 3, 2.0, COOL), run("8.1.RC1", 4, 2.0, COOL),
                                  run("8.1.RC1", 5, 2.0, HOT)]):
        path = tmp_path / f"run{index}.json"
        path.write_text(json.dumps({"datetime": made.datetime, "machine_info": made.machine_info,
                                    "benchmarks": made.benchmarks}))
        files.append(f"--json={path}")
    code = main(["history", *files, "--metric=tpot_ms", "--fail-on-regression"])
    out = capsys.readouterr().out
    assert code == 1
    assert "  versions: cann 8.0.RC2 -> 8.1.RC1" in out
    assert f"set aside: {BENCH} in {tmp_path / 'run4.json'} set aside" in out
    assert main(["history", *files, "--metric=tpot_ms", "--format=json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert len(report["explained"]) == 1 and len(report["set_aside"]) == 1
