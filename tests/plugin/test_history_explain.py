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
    assert max(len(line) for line in out.splitlines()) <= 120
    unwrapped = out.replace("\n    ", " ")  # a line longer than 120 columns goes on indented
    assert f"set aside: {BENCH} in {tmp_path / 'run4.json'} set aside" in unwrapped
    assert main(["history", *files, "--metric=tpot_ms", "--format=json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert len(report["explained"]) == 1 and len(report["set_aside"]) == 1


def test_every_moved_metric_is_explained_whatever_came_before_it():
    def both(cann, day, factor, telemetry):
        made = run(cann, day, factor, telemetry)
        extra = made.benchmarks[0]["extra_info"]
        extra["ttft_ms"], extra["rounds"]["ttft_ms"] = 8.0, list(ROUNDS)  # never moves
        return made

    runs = [both("a", 1, 1.0, COOL), both("a", 2, 1.0, COOL),
            both("b", 3, 0.4, COOL), both("b", 4, 0.4, COOL)]
    explained = explain(build_history(runs, metrics=("ttft_ms", "tpot_ms")))
    assert [(e["metric"], e["verdict"]) for e in explained] == [("tpot_ms", "improvement")]
    lines = explanation_lines(explained * 2)
    assert len(lines) == 8 and lines[3] == "  versions: cann a -> b"
    assert explanation_lines([{**explained[0], "versions": [],
                               "group_card": {"core_clock_mhz": None, "temperature_c": 60.0,
                                              "power_w": None}}])[2:] == [
        "  card in b: clock unknown, temperature 60 C, power unknown",
        "  versions: no component version differs"]


def test_versions_on_each_side_are_listed_whole_or_unknown():
    before = [run("a", 1, 1.0, COOL, driver="24.1.0"), run("a", 2, 1.0, COOL, driver="24.1.1")]
    after = [dataclasses.replace(run("b", 3, 1.0, COOL), machine_info={"ascend": {
        "cann": "b", "torch": "2.5.1"}})]
    assert differing_versions(before, after) == ["cann a -> b", "driver 24.1.0/24.1.1 -> unknown"]
    assert differing_versions(after, before) == ["cann b -> a", "driver unknown -> 24.1.0/24.1.1"]


def test_a_run_named_without_fullname_or_without_extra_info_is_read_as_it_is():
    named = run("a", 1, 1.0, card(1700, 50, 200))
    named.benchmarks[0].pop("fullname")
    assert card_medians([named], "test_x")["core_clock_mhz"] == 1700
    bare = dataclasses.replace(named, benchmarks=[{"name": "test_x", "extra_info": None}])
    kept, notes = set_aside_throttled([bare])
    assert kept[0].benchmarks == bare.benchmarks and notes == []


def test_the_set_aside_line_gives_the_reasons_or_says_the_clock_is_unknown():
    reasons = {**HOT, "throttle_reasons": ["software power cap", "hardware slowdown"]}
    _, notes = set_aside_throttled([run("a", 1, 1.0, reasons)])
    assert notes[0].endswith("(clock -33%; software power cap, hardware slowdown)")
    _, notes = set_aside_throttled([run("a", 1, 1.0, {"throttled": True})])
    assert notes[0].endswith("its card throttled (clock unknown; no reason given)")
