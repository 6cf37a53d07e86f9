"""`pytest-ascend fleet` on synthetic results of 50 boxes: a slow box is named by its host,
boxes on another CANN version are compared among themselves only, boxes with fewer cards
are compared on what they have, a box that fell behind its own history is flagged, and the
exit codes say what happened."""

import json
import math
import random
import subprocess
import sys

import pytest

from pytest_ascend.fleet.compare import compare_fleet, flagged_boxes
from pytest_ascend.fleet.outliers import badness, fleet_outliers, history_outlier
from pytest_ascend.history.runs import Run


def box_run(host, *, cann="8.0.RC3", tpot=20.0, tokens_per_s=50.0, cards=8, day=1, rng=None,
            salt=0):
    rng = rng or random.Random(f"{host}-{salt}")
    ascend = {"cann": cann, "device_kind": "npu", "device_name": "Ascend910B3",
              "model": "Qwen2.5-14B-Instruct", "dtype": "float16", "smoke": False}
    benches = [{"name": "test_decode", "fullname": "tests/perf/t.py::test_decode",
                "stats": {"median": 1.0},
                "extra_info": {"tpot_ms": tpot * math.exp(rng.gauss(0, 0.02)),
                               "output_tokens_per_s": tokens_per_s * math.exp(rng.gauss(0, 0.02))}}]
    benches += [{"name": f"test_card[card{i}]", "fullname": f"tests/box/t.py::test_card[card{i}]",
                 "stats": {"median": 1.0},
                 "extra_info": {"d2d_gb_s": 1500 * math.exp(rng.gauss(0, 0.02))}}
                for i in range(cards)]
    return Run(f"{host}-{day}.json", f"2026-12-{day:02d}T02:00:00",
               {"node": host, "ascend": ascend}, benches)


METRICS = ("tpot_ms", "output_tokens_per_s", "d2d_gb_s")


def fleet(count=50, salt=0, **planted):
    return [box_run(f"atlas-{i:02d}", salt=salt, **planted.get(f"atlas-{i:02d}", {}))
            for i in range(count)]


def test_the_slow_box_of_50_is_named_by_its_host_with_the_metric_and_the_gap():
    runs = fleet(**{"atlas-17": {"tpot": 26.0, "tokens_per_s": 38.0}})
    report = compare_fleet(runs, METRICS)
    assert flagged_boxes(report) == ["atlas-17"]
    metrics = sorted(flag.metric for flag in report.flags)
    assert metrics == ["output_tokens_per_s", "tpot_ms"]
    tpot = next(flag for flag in report.flags if flag.metric == "tpot_ms")
    assert tpot.gap == pytest.approx(0.3, abs=0.06) and tpot.against == "the fleet"
    assert tpot.describe().startswith("atlas-17: tpot_ms of tests/perf/t.py::test_decode is ")


@pytest.mark.parametrize("salt", range(8))
def test_a_quiet_fleet_of_50_flags_nothing(salt):
    assert compare_fleet(fleet(salt=salt), METRICS).flags == []


def test_boxes_on_another_cann_version_are_compared_among_themselves():
    planted = {f"atlas-{i:02d}": {"cann": "8.1.RC1", "tpot": 30.0} for i in range(40, 50)}
    report = compare_fleet(fleet(**planted), METRICS)
    assert report.flags == [] and len(report.groups) == 2
    assert sorted(len(g.boxes) for g in report.groups) == [10, 40]
    mixed = compare_fleet(fleet(**planted), METRICS, across_versions=True)
    assert flagged_boxes(mixed) == [f"atlas-{i:02d}" for i in range(40, 50)]


def test_boxes_with_fewer_cards_are_compared_on_the_cards_they_have():
    planted = {f"atlas-{i:02d}": {"cards": 4} for i in range(10)}
    report = compare_fleet(fleet(**planted), METRICS)
    assert report.flags == []
    (group,) = report.groups
    assert len(group.values[("tests/box/t.py::test_card[card7]", "d2d_gb_s")]) == 40
    assert len(group.values[("tests/box/t.py::test_card[card0]", "d2d_gb_s")]) == 50


def test_a_box_behind_its_own_history_is_flagged():
    runs = fleet(10)
    rng = random.Random(3)
    runs += [box_run("atlas-03", day=day, rng=rng) for day in (2, 3, 4)]
    runs.append(box_run("atlas-03", day=5, tpot=20.0 * 1.25, rng=rng))
    report = compare_fleet(runs, ("tpot_ms",))
    (flag,) = [f for f in report.flags if f.against == "its own history"]
    assert flag.box == "atlas-03" and flag.gap == pytest.approx(0.25, abs=0.06)


def test_the_robust_rule():
    assert fleet_outliers({"a": 1.0, "b": 1.0}, benchmark="b", metric="m",
                          higher_is_better=True) == []  # two boxes: no majority
    values = {"a": 100.0, "b": 101.0, "c": 99.0, "d": 100.0, "e": 80.0}
    (flag,) = fleet_outliers(values, benchmark="b", metric="tok/s", higher_is_better=True)
    assert flag.box == "e" and flag.score == pytest.approx(0.6745 * 20 / 1.0)
    assert fleet_outliers({**values, "e": 120.0}, benchmark="b", metric="tok/s",
                          higher_is_better=True) == []  # faster is never the odd one out
    same = {"a": 10.0, "b": 10.0, "c": 10.0, "d": 10.2}
    assert fleet_outliers(same, benchmark="b", metric="ms", higher_is_better=False) == []
    assert [f.box for f in fleet_outliers({**same, "d": 11.0}, benchmark="b", metric="ms",
                                          higher_is_better=False)] == ["d"]
    assert badness(5.0, 5.0, 0.0, True) == 0.0 and badness(4.0, 5.0, 0.0, True) == math.inf
    assert history_outlier("a", [1.0, 1.0], 2.0, benchmark="b", metric="ms",
                           higher_is_better=False) is None


def write_runs(folder, runs):
    folder.mkdir(exist_ok=True)
    for run in runs:
        (folder / run.source).write_text(json.dumps(
            {"machine_info": run.machine_info, "datetime": run.datetime,
             "benchmarks": run.benchmarks}))
    return folder


def fleet_command(*args):
    return subprocess.run([sys.executable, "-m", "pytest_ascend", "fleet", *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def test_the_command_names_the_box_writes_json_and_png_and_exits_by_what_it_found(tmp_path):
    store = write_runs(tmp_path / "runs", fleet(**{"atlas-33": {"tpot": 27.0}}))
    done = fleet_command(store, "--metric", "tpot_ms", "--json", tmp_path / "f.json", "--png",
                         tmp_path / "f.png")
    assert done.returncode == 1, done.stderr
    assert "1 box(es) flagged: atlas-33" in done.stdout and "FLAGGED atlas-33: tpot_ms" in \
        done.stdout
    assert json.loads((tmp_path / "f.json").read_text())["flagged"] == ["atlas-33"]
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"
    quiet = write_runs(tmp_path / "quiet", fleet(20))
    assert fleet_command(quiet, "--metric", "tpot_ms").returncode == 0
    two = write_runs(tmp_path / "two", fleet(2))
    done = fleet_command(two)
    assert done.returncode == 2 and "no group of 3 or more boxes" in done.stderr
    assert fleet_command(tmp_path / "missing").returncode == 2


def test_the_rule_at_its_edges():
    three = {"a": 100.0, "b": 100.0, "c": 75.0}  # three boxes are enough; MAD 0 here
    (flag,) = fleet_outliers(three, benchmark="b", metric="tok/s", higher_is_better=True)
    assert (flag.box, flag.value, flag.reference, flag.score) == ("c", 75.0, 100.0, math.inf)
    assert flag.gap == -0.25
    assert fleet_outliers(three, benchmark="b", metric="tok/s", higher_is_better=True,
                          min_gap=0.25) != []  # a gap of exactly min_gap counts
    assert fleet_outliers(three, benchmark="b", metric="tok/s", higher_is_better=True,
                          min_gap=0.2500001) == []
    spread = {"a": 100.0, "b": 101.0, "c": 99.0, "d": 100.0, "e": 80.0}
    score = 0.6745 * 20.0 / 1.0
    assert fleet_outliers(spread, benchmark="b", metric="tok/s", higher_is_better=True,
                          threshold=score) == []  # the score must pass the threshold
    assert badness(6.0, 5.0, 0.0, True) == -math.inf and badness(6.0, 5.0, 0.0, False) == \
        math.inf
    worse = fleet_outliers({**spread, "d": 60.0, "c": 100.0}, benchmark="b", metric="tok/s",
                           higher_is_better=True)
    assert [f.box for f in worse] == ["d", "e"]  # worst first


def test_the_own_history_rule_at_its_edges():
    flag = history_outlier("a", [50.0, 50.0, 50.0], 40.0, benchmark="bench", metric="tok/s",
                           higher_is_better=True)
    assert (flag.box, flag.benchmark, flag.metric, flag.against) == \
        ("a", "bench", "tok/s", "its own history")
    assert flag.score == math.inf and flag.gap == pytest.approx(-0.2)
    assert history_outlier("a", [50.0, 50.0, 50.0], 60.0, benchmark="b", metric="tok/s",
                           higher_is_better=True) is None  # faster than it was
    assert history_outlier("a", [50.0, 50.0, 50.0], 60.0, benchmark="b", metric="ms",
                           higher_is_better=False).gap == pytest.approx(0.2)
    assert history_outlier("a", [50.0, 50.0, 50.0], 48.0, benchmark="b", metric="tok/s",
                           higher_is_better=True) is None  # 4%: under the smallest gap
    assert history_outlier("a", [50.0, 51.0, 49.0, 50.0], 40.0, benchmark="b",
                           metric="tok/s", higher_is_better=True,
                           threshold=0.6745 * 10.0 / 0.5) is None


def results_log(path, host, tpot, *, box=None, session="s1"):
    """A results log as --ascend-results-log writes it: session_start with the provenance,
    one record per test phase; a cut last line as a kill leaves it."""
    ascend = box_run(host).machine_info["ascend"]
    if box is not None:
        ascend = {**ascend, "box": box}
    records = [{"type": "session_start", "time": 1796000000.0, "session": session,
                "host": host, "ascend": ascend},
               {"type": "test", "time": 1796000100.0, "session": session,
                "nodeid": "tests/perf/t.py::test_decode", "when": "call", "outcome": "passed",
                "metrics": {"tpot_ms": tpot, "rounds": {"tpot_ms": [tpot, tpot * 1.01]}}},
               {"type": "test", "time": 1796000200.0, "session": session,
                "nodeid": "tests/perf/t.py::test_other", "when": "call", "outcome": "failed",
                "metrics": {"tpot_ms": 1000.0}}]
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + '{"type": "te')
    return path


def test_results_logs_are_runs_of_their_boxes_even_of_a_killed_session(tmp_path, capsys):
    from pytest_ascend.cli import main

    paths = [str(results_log(tmp_path / f"box{i}.jsonl", f"atlas-{i}", 20.0 + 0.1 * i))
             for i in range(4)]
    paths.append(str(results_log(tmp_path / "slow.jsonl", "atlas-9", 30.0)))
    assert main(["fleet", *paths, "--metric", "tpot_ms", "--json",
                 str(tmp_path / "fleet.json")]) == 1
    assert "atlas-9: tpot_ms of tests/perf/t.py::test_decode" in capsys.readouterr().out
    flagged = json.loads((tmp_path / "fleet.json").read_text())
    assert json.dumps(flagged).count("atlas-9") >= 1
    assert "test_other" not in json.dumps(flagged)  # a failed test's figure is no figure


def test_a_box_name_given_by_the_run_overrides_the_shared_host(tmp_path, capsys):
    from pytest_ascend.cli import main

    paths = [str(results_log(tmp_path / f"task{i}.jsonl", "ci-host", tpot, box=f"box-{i}"))
             for i, tpot in enumerate([20.0, 20.2, 19.9, 31.0])]
    assert main(["fleet", *paths, "--metric", "tpot_ms"]) == 1
    out = capsys.readouterr().out
    assert "box-3: tpot_ms" in out and "ci-host" not in out


def test_a_log_without_its_session_start_is_skipped_by_name(tmp_path):
    from pytest_ascend.fleet.compare import read_results

    path = results_log(tmp_path / "box.jsonl", "atlas-1", 20.0)
    lines = path.read_text().splitlines()
    path.write_text(lines[0].replace('"session": "s1"', '"session": "s0"') + "\n" +
                    "\n".join(lines[1:]))
    runs, skipped = read_results([path])
    assert [run.machine_info["node"] for run in runs] == ["atlas-1"]
    assert [item.reason for item in skipped] == [
        "no session_start record: the log does not say which box ran it"]
