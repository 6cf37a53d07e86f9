"""`pytest-ascend history` on real pytest-benchmark output of the tiny perf suite: runs
relabelled as CANN versions, regressions planted in copies, corrupt and foreign files mixed
in. The gate must flag exactly what was planted.

A group is gated only with at least 2 runs (run-to-run noise shows only there); where a test
plants a change, two copies of one real run stand for a group's two runs, so the verdict
rests on that run's own rounds. The gate judges hardware runs only (a smoke run's performance
is reported, not judged), so copies that test the gate are relabelled as hardware runs."""

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_ascend.cli import main
from pytest_ascend.measure.stats import percentile

PERF_SUITE = Path(__file__).resolve().parents[1] / "perf"
SHORT_QA = "tests/perf/test_single_request.py::test_single_request_latency[short_qa]"
RUNS = 2  # each a fresh suite session (about 20 s here): what the tests need, no more


def store_runs(storage, shared_cache, count):
    for _ in range(count):
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-m", "npu",
             str(PERF_SUITE / "test_single_request.py"), "--benchmark-autosave",
             "--benchmark-save-data", f"--benchmark-storage=file://{storage}",
             f"--ascend-cache={shared_cache}"],
            capture_output=True, text=True, cwd=PERF_SUITE.parents[1], timeout=600,
        )
        assert proc.returncode == 0, proc.stdout[-2000:]


@pytest.fixture(scope="module")
def real_storage(tmp_path_factory, shared_cache):
    """pytest-benchmark storage holding real runs of the single-request benchmarks, rounds
    kept, autosaved by pytest-benchmark itself (in its machine-id folder), after one run
    that is not kept (a machine's first run pays for cold caches)."""
    store_runs(tmp_path_factory.mktemp("warm-up"), shared_cache, 1)
    storage = tmp_path_factory.mktemp("storage")
    store_runs(storage, shared_cache, RUNS)
    assert len(sorted(storage.rglob("*.json"))) == RUNS
    return storage


@pytest.fixture(scope="module")
def real_runs(real_storage):
    """The stored runs as pytest-benchmark wrote them."""
    return [json.loads(p.read_text()) for p in sorted(real_storage.rglob("*.json"))]


def relabel(run, directory, cann, smoke=False, **edits):
    """A copy of `run` as if measured on hardware (or as the smoke run it was, with `smoke`)
    under CANN `cann`, with `metric=factor` edits applied to the short_qa benchmark (`time`
    scales its rounds and summary)."""
    data = copy.deepcopy(run)
    data["machine_info"]["ascend"]["cann"] = cann
    data["machine_info"]["ascend"]["smoke"] = smoke
    bench = next(b for b in data["benchmarks"] if b["fullname"] == SHORT_QA)
    for metric, factor in edits.items():
        if metric == "time":
            stats = bench["stats"]
            stats["data"] = [x * factor for x in stats["data"]]
            for key in ("min", "max", "mean", "median", "q1", "q3", "iqr"):
                stats[key] *= factor
        else:
            bench["extra_info"][metric] *= factor
            rounds = bench["extra_info"].get("rounds", {})
            if metric in rounds:
                rounds[metric] = [x * factor for x in rounds[metric]]
    directory.mkdir(exist_ok=True)
    path = directory / f"run-{cann}-{len(list(directory.glob(f'run-{cann}-*')))}.json"
    path.write_text(json.dumps(data))
    return path


def beyond_noise(run, metric, down=False):
    """A factor the gate must flag in `run`'s SHORT_QA `metric`: a 30% change in its cost
    (x1.3, or /1.3 with `down`), or more when this run's own rounds are noisier than the 10%
    a 30% change allows (the gate's threshold is 3 x the relative IQR), as on a busy CI
    machine."""
    bench = next(b for b in run["benchmarks"] if b["fullname"] == SHORT_QA)
    rounds = bench["stats"]["data"] if metric == "time" else \
        bench["extra_info"]["rounds"][metric]
    middle = percentile(rounds, 50)
    noise = (percentile(rounds, 75) - percentile(rounds, 25)) / middle
    change = max(0.30, 4 * noise)
    return 1 / (1 + change) if down else 1 + change


def two_runs(run, directory, cann, **edits):
    """Two copies of `run` under CANN `cann`: a group the gate judges (see above)."""
    for _ in range(2):
        relabel(run, directory, cann, **edits)


def history(capsys, *args):
    code = main(["history", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


def regressions(capsys, storage, *extra):
    code, out, _ = history(capsys, "--storage", storage, "--format", "json",
                           "--fail-on-regression", *extra)
    report = json.loads(out)
    found = {(c["benchmark"], c["metric"]) for ctx in report["contexts"]
             for c in ctx["comparisons"] if c["verdict"] == "regression"}
    return code, found, report


def test_a_30_percent_tpot_slowdown_fails_the_gate(real_runs, tmp_path, capsys):
    run = real_runs[0]
    two_runs(run, tmp_path, "8.0.RC2")
    two_runs(run, tmp_path, "8.1.RC1", tpot_ms=beyond_noise(run, "tpot_ms"),
             time=beyond_noise(run, "time"))
    code, found, _ = regressions(capsys, tmp_path)
    assert code == 1
    assert found == {(SHORT_QA, "tpot_ms"), (SHORT_QA, "time")}


def without_rounds(run):
    bare = copy.deepcopy(run)
    for bench in bare["benchmarks"]:
        bench["extra_info"].pop("rounds")
        bench["stats"].pop("data")
    return bare


@pytest.mark.parametrize("build", [
    lambda run, d, cann, **e: relabel(run, d, cann, **e),  # one run: rounds, no run-to-run
    lambda run, d, cann, **e: two_runs(without_rounds(run), d, cann, **e),  # two values
], ids=["one run", "two runs without rounds"])
def test_a_group_whose_noise_is_unknown_is_reported_not_gated(real_runs, tmp_path, capsys,
                                                               build):
    """Fewer than 2 runs, or fewer than 3 samples: a 30% TPOT change is shown, never gated."""
    build(real_runs[0], tmp_path, "8.0.RC2")
    build(real_runs[0], tmp_path, "8.1.RC1", tpot_ms=1.3)
    code, found, report = regressions(capsys, tmp_path)
    assert code == 0 and not found
    verdicts = {c["verdict"] for c in report["contexts"][0]["comparisons"]
                if c["metric"] == "tpot_ms"}
    assert verdicts == {"not gated"}


def test_ttft_is_judged_by_its_own_rounds(real_runs, tmp_path, capsys):
    """TTFT's rounds vary far more than whole-round times; its gate uses its own spread."""
    relabel(real_runs[0], tmp_path, "8.0.RC2")
    code, out, _ = history(capsys, "--storage", tmp_path, "--format", "json")
    stats = json.loads(out)["contexts"][0]["benchmarks"]
    ttft = next(b for b in stats if b["benchmark"] == SHORT_QA and b["metric"] == "ttft_ms")
    rounds = real_runs[0]["benchmarks"][0]["extra_info"]["rounds"]["ttft_ms"]
    assert ttft["groups"]["8.0.RC2"]["samples"] == len(rounds) >= 3


def gate_threshold(run, metric):
    """The gate's threshold for SHORT_QA `metric` between two groups of two copies of
    `run`: max(min_change, 3 x the relative IQR of the copies' rounds)."""
    bench = next(b for b in run["benchmarks"] if b["fullname"] == SHORT_QA)
    rounds = 2 * (bench["stats"]["data"] if metric == "time" else
                  bench["extra_info"]["rounds"][metric])
    middle = percentile(rounds, 50)
    return max(0.15, 3 * (percentile(rounds, 75) - percentile(rounds, 25)) / middle)


@pytest.mark.parametrize("share, flagged", [(0.8, False), (1.25, True)])
def test_a_change_either_side_of_the_gates_threshold(real_runs, tmp_path, capsys, share,
                                                     flagged):
    """A slowdown of 80% of the threshold this run's own noise sets passes; 125% fails.
    (Below min_change alone, a change says nothing about the noise term.)"""
    run = real_runs[0]
    factors = {m: 1 + share * gate_threshold(run, m) for m in ("tpot_ms", "time")}
    two_runs(run, tmp_path, "8.0.RC2")
    two_runs(run, tmp_path, "8.1.RC1", **factors)
    code, found, _ = regressions(capsys, tmp_path)
    if flagged:
        assert code == 1 and found == {(SHORT_QA, "tpot_ms"), (SHORT_QA, "time")}
    else:
        assert code == 0 and not found


def test_smoke_runs_are_reported_never_gated(real_runs, tmp_path, capsys):
    """Real smoke runs back to back, the first under one label, the second 50% slower in
    TPOT under another, two copies each: back-to-back CPU runs drift by that much on their
    own, so smoke changes are shown with their reason and never fail the gate."""
    for _ in range(2):
        relabel(real_runs[0], tmp_path, "8.0.RC2", smoke=True)
        relabel(real_runs[1], tmp_path, "8.1.RC1", smoke=True, tpot_ms=1.5)
    code, found, report = regressions(capsys, tmp_path)
    assert report["contexts"][0]["groups"] == ["8.0.RC2", "8.1.RC1"]
    assert code == 0 and not found
    comparisons = report["contexts"][0]["comparisons"]
    assert {c["verdict"] for c in comparisons} == {"not gated"}
    assert all(c["not_gated_because"].startswith("smoke run") for c in comparisons)
    _, table, _ = history(capsys, "--storage", tmp_path)
    assert "not gated: smoke run" in table
    # The change is still measured and shown: on copies of one run (the real ones
    # drift by up to 1.5x on a busy machine), exactly the planted +50%.
    planted = tmp_path / "planted"
    for cann, factor in (("8.0.RC2", 1.0), ("8.0.RC2", 1.0), ("8.1.RC1", 1.5), ("8.1.RC1", 1.5)):
        relabel(real_runs[0], planted, cann, smoke=True, tpot_ms=factor)
    _, _, report = regressions(capsys, planted)
    tpot = [c for c in report["contexts"][0]["comparisons"]
            if c["benchmark"] == SHORT_QA and c["metric"] == "tpot_ms"]
    assert tpot[0]["verdict"] == "not gated" and tpot[0]["change"] == pytest.approx(0.5)


def test_direction_matters_for_throughput(real_runs, tmp_path, capsys):
    run = real_runs[0]
    two_runs(run, tmp_path, "8.0.RC2")
    two_runs(run, tmp_path, "8.1.RC1",
             output_tokens_per_s=beyond_noise(run, "output_tokens_per_s", down=True),
             roofline_fraction=beyond_noise(run, "roofline_fraction"))
    code, found, report = regressions(capsys, tmp_path)
    assert found == {(SHORT_QA, "output_tokens_per_s")}
    verdicts = {c["metric"]: c["verdict"] for c in report["contexts"][0]["comparisons"]
                if c["benchmark"] == SHORT_QA}
    assert verdicts["roofline_fraction"] == "improvement" and code == 1


def test_baseline_and_group_order(real_runs, tmp_path, capsys):
    for i, cann in enumerate(["8.0.RC2", "8.1.RC1", "8.2.RC1"]):
        run = copy.deepcopy(real_runs[0])
        run["datetime"] = f"2026-11-0{i + 1}T00:00:00"
        slower = beyond_noise(run, "tpot_ms") if cann == "8.1.RC1" else 1.0
        two_runs(run, tmp_path, cann, tpot_ms=slower)
    code, found, report = regressions(capsys, tmp_path)
    assert report["contexts"][0]["groups"] == ["8.0.RC2", "8.1.RC1", "8.2.RC1"]
    assert found == {(SHORT_QA, "tpot_ms")} and code == 1  # 8.1 vs 8.0; 8.2 improved on 8.1
    code, found, _ = regressions(capsys, tmp_path, "--baseline", "8.2.RC1")
    assert code == 1 and found == {(SHORT_QA, "tpot_ms")}  # 8.1 is worse than 8.2 too


def test_smoke_runs_never_merge_with_hardware_runs(real_runs, tmp_path, capsys):
    relabel(real_runs[0], tmp_path, "8.0.RC2", smoke=True)
    hardware = copy.deepcopy(real_runs[0])
    hardware["machine_info"]["ascend"].update(smoke=False, device_kind="npu",
                                              device_name="Ascend910B2")
    relabel(hardware, tmp_path / "hw", "8.1.RC1", tpot_ms=2.0)
    code, found, report = regressions(capsys, tmp_path)
    assert len(report["contexts"]) == 2 and code == 0 and not found
    code, out, _ = history(capsys, "--storage", tmp_path)
    assert "smoke run" in out and "hardware run" in out and "listed separately" in out


def test_corrupt_and_foreign_files_are_reported_and_skipped(real_runs, tmp_path, capsys):
    relabel(real_runs[0], tmp_path, "8.0.RC2")
    relabel(real_runs[1], tmp_path, "8.1.RC1")
    (tmp_path / "truncated.json").write_text('{"benchmarks": [')
    (tmp_path / "other-project.json").write_text(json.dumps({"machine_info": {},
                                                             "benchmarks": []}))
    (tmp_path / "list.json").write_text("[1, 2]")
    before = {p: p.read_bytes() for p in tmp_path.iterdir()}
    code, out, err = history(capsys, "--storage", tmp_path)
    assert code == 0 and "8.1.RC1" in out
    assert "truncated.json: not JSON" in err
    assert "other-project.json: no ascend block" in err
    assert "list.json: not pytest-benchmark output" in err
    assert {p: p.read_bytes() for p in tmp_path.iterdir()} == before  # only read


@pytest.mark.parametrize("setup, message", [
    (lambda d: None, "no pytest-ascend benchmark runs found"),
    (lambda d: (d / "x.json").write_text("nope"), "no pytest-ascend benchmark runs found"),
])
def test_nothing_to_compare_exits_2(tmp_path, capsys, setup, message):
    setup(tmp_path)
    code, _, err = history(capsys, "--storage", tmp_path)
    assert code == 2 and message in err


def test_missing_storage_and_unknown_baseline_exit_2(real_runs, tmp_path, capsys):
    code, _, err = history(capsys, "--storage", tmp_path / "nowhere")
    assert code == 2 and "is not a directory" in err
    relabel(real_runs[0], tmp_path, "8.0.RC2")
    code, _, err = history(capsys, "--storage", tmp_path, "--baseline", "7.0")
    assert code == 2 and "--baseline '7.0' is not a group" in err and "8.0.RC2" in err


def test_group_by_another_key_and_json_files(real_runs, tmp_path, capsys):
    first = relabel(real_runs[0], tmp_path, "8.0.RC2")
    data = json.loads(first.read_text())
    data["machine_info"]["ascend"]["torch_npu"] = "2.5.1"
    second = tmp_path / "second.json"
    second.write_text(json.dumps(data))
    code, out, _ = history(capsys, "--json", first, "--json", second, "--group-by",
                           "ascend.torch_npu", "--format", "markdown")
    assert code == 0 and "| unknown (1 run) | 2.5.1 (1 run) |" in out


def test_plot_and_html_show_the_groups(real_runs, tmp_path, capsys):
    storage = tmp_path / "s"
    two_runs(real_runs[0], storage, "8.0.RC2")
    two_runs(real_runs[0], storage, "8.1.RC1", tpot_ms=beyond_noise(real_runs[0], "tpot_ms"))
    code, _, _ = history(capsys, "--storage", storage, "--plot", tmp_path / "h.png",
                         "--html", tmp_path / "site")
    assert code == 0  # no --fail-on-regression: report only
    assert (tmp_path / "h.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (tmp_path / "site" / "index.html").read_text()
    assert "8.1.RC1" in page and "regression" in page
    assert list((tmp_path / "site").glob("box-*.html"))


def test_python_m_entry_point(real_runs, tmp_path):
    relabel(real_runs[0], tmp_path, "8.0.RC2")
    proc = subprocess.run([sys.executable, "-m", "pytest_ascend", "history", "--storage",
                           str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "8.0.RC2 (1 run)" in proc.stdout


@pytest.mark.parametrize("form", ["{}", "file://{}"])
def test_storage_is_read_as_pytest_benchmark_reads_it(real_storage, capsys, form):
    """The autosaved runs sit in pytest-benchmark's machine-id folder; --storage takes a
    path or a file:// URI, as --benchmark-storage does."""
    code, out, _ = history(capsys, "--storage", form.format(real_storage), "--format", "json")
    report = json.loads(out)
    assert code == 0 and len(report["contexts"]) == 1
    runs = report["contexts"][0]["runs"]
    assert sum(len(paths) for paths in runs.values()) == RUNS


def test_a_missing_storage_exits_2_and_is_not_created(tmp_path, capsys):
    missing = tmp_path / "no-such-storage"
    code, _, err = history(capsys, "--storage", f"file://{missing}")
    assert code == 2 and "is not a directory" in err and not missing.exists()


def test_a_storage_uri_pytest_benchmark_refuses_exits_2_in_one_line(capsys):
    code, _, err = history(capsys, "--storage", "ftp://example/benchmarks")
    assert code == 2 and "Storage must be in form of file://path" in err
    assert len(err.strip().splitlines()) == 1


def _mutate_first_benchmark(run, edit):
    data = copy.deepcopy(run)
    edit(data)
    return data


@pytest.mark.parametrize("edit, reason", [
    (lambda d: d.update(benchmarks=[1, "x"]), "benchmarks[0] is not an object"),
    (lambda d: d["benchmarks"][0]["stats"].update(data=["oops"]),
     "stats.data holds something other than numbers"),
    (lambda d: d["machine_info"]["ascend"].update(cann=["8.0.RC2"]),
     "machine_info.ascend.cann is a list, not a value"),
    (lambda d: [d["benchmarks"][0].pop(k) for k in ("name", "fullname")],
     "benchmarks[0] has no name"),
    (lambda d: d["benchmarks"][0].update(extra_info=[]), "extra_info is not an object"),
    (lambda d: d["benchmarks"][0]["stats"].update(median="fast"), "stats.median is not a number"),
])
def test_a_malformed_run_is_skipped_by_name(real_runs, tmp_path, capsys, edit, reason):
    relabel(real_runs[0], tmp_path, "8.0.RC2")
    (tmp_path / "bad.json").write_text(json.dumps(_mutate_first_benchmark(real_runs[1], edit)))
    code, out, err = history(capsys, "--storage", tmp_path, "--fail-on-regression")
    assert code == 0 and "8.0.RC2" in out
    assert f"skipped {tmp_path / 'bad.json'}: " in err and reason in err
    assert "Traceback" not in err


def test_a_results_log_is_named_as_such(tmp_path, capsys):
    log = tmp_path / "run.jsonl"
    log.write_text('{"type": "session_start", "ascend": {}}\n{"type": "test"}\n')
    code, _, err = history(capsys, "--json", log)
    assert code == 2 and "a pytest-ascend results log (JSON lines)" in err


def test_an_internal_error_is_exit_3_never_1(real_runs, tmp_path, capsys, monkeypatch):
    from pytest_ascend.history import gate

    relabel(real_runs[0], tmp_path, "8.0.RC2")
    monkeypatch.setattr(gate, "build_history", lambda *a, **k: 1 / 0)
    code, _, err = history(capsys, "--storage", tmp_path, "--fail-on-regression")
    assert code == 3 and "internal error: ZeroDivisionError" in err
    assert len(err.strip().splitlines()) == 1


REPLACEMENTS = ([], {}, "x", "", 0, -1, 1e308, None, True, [1, "x"], {"a": []}, [None])


def _nodes(value, path=()):
    """Every (path, value) in a JSON tree, the root included."""
    yield path, value
    items = value.items() if isinstance(value, dict) else \
        enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        yield from _nodes(child, path + (key,))


def _replace(tree, path, new):
    if not path:
        return new
    parent = tree
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = new
    return tree


def test_fuzzed_runs_never_give_a_traceback_or_a_false_regression(real_runs, tmp_path,
                                                                   capsys):
    """Random truncations and type swaps of a real stored run, each beside an intact run
    under another label: every one is read or skipped by name; the exit status is 0 (both
    runs used, or the bad one skipped) or 2 (nothing left to compare), never 1 without a
    regression printed, never 3, never a traceback."""
    import random

    rng = random.Random(20261125)
    base = relabel(real_runs[0], tmp_path / "base", "8.1.RC1").read_text()
    relabel(real_runs[1], tmp_path / "storage", "8.0.RC2")
    fuzz = tmp_path / "storage" / "fuzzed.json"
    for case in range(300):
        if case % 3 == 0:
            fuzz.write_text(base[: rng.randrange(len(base))])
        else:
            tree = json.loads(base)
            for _ in range(rng.randint(1, 3)):
                path, _ = rng.choice(list(_nodes(tree)))
                tree = _replace(tree, path, copy.deepcopy(rng.choice(REPLACEMENTS)))
            fuzz.write_text(json.dumps(tree))
        code, out, err = history(capsys, "--storage", tmp_path / "storage", "--format",
                                 rng.choice(["table", "json", "markdown"]),
                                 "--fail-on-regression")
        where = f"case {case}: {fuzz.read_text()[:300]!r}"
        assert "Traceback" not in err and code in (0, 1, 2), f"{where}\n{err}"
        if code == 1:
            assert "REGRESSION" in out or '"verdict": "regression"' in out, where


@pytest.mark.parametrize("higher_is_better, change", [(True, -0.8), (False, 4.0)])
def test_a_collapse_is_flagged_however_noisy_the_metric(higher_is_better, change):
    """A fall can never exceed 100% of a value: a throughput down to a fifth (-80%) is the
    same 5x loss as a latency 5x longer, and with 40% noise (threshold 120%) both must fail
    the gate."""
    from pytest_ascend.history.gate import Comparison

    collapse = Comparison("bench", "metric", "8.1.RC1", "8.0.RC2", change, threshold=1.2,
                          higher_is_better=higher_is_better)
    assert collapse.cost_change == pytest.approx(4.0) and collapse.verdict == "regression"
    better = Comparison("bench", "metric", "8.1.RC1", "8.0.RC2", -change / (1 + change),
                        threshold=1.2, higher_is_better=higher_is_better)
    assert better.verdict == "improvement"


def test_the_saturation_rate_is_gated_higher_is_better_and_the_html_links_the_sweep(tmp_path):
    from pytest_ascend.history.gate import build_history
    from pytest_ascend.history.render import write_html
    from pytest_ascend.history.runs import Run

    def run(cann, saturation, day):
        ascend = {"cann": cann, "device_kind": "npu", "device_name": "Ascend910B1",
                  "model": "Qwen2.5-14B-Instruct", "dtype": "float16", "smoke": False}
        bench = {"name": "test_sweep", "fullname": "tests/deploy/t.py::test_sweep",
                 "stats": {"median": 30.0},
                 "extra_info": {"saturation_rate_per_s": saturation,
                                "plot_png": f"/reports/{cann}/serving_sweep.png"}}
        return Run(f"{cann}-{day}", f"2026-11-{day:02d}", {"ascend": ascend}, [bench])

    runs = [run("8.0.RC2", 16.0, day) for day in (1, 2, 3)] + \
        [run("8.1.RC1", 8.0, day) for day in (4, 5, 6)]
    history = build_history(runs)
    verdicts = {c.metric: c.verdict for c in history.contexts[0].comparisons}
    assert verdicts["saturation_rate_per_s"] == "regression"
    write_html(history, tmp_path / "history.html")
    page = (tmp_path / "history.html").read_text()
    assert "href='/reports/8.1.RC1/serving_sweep.png'" in page
