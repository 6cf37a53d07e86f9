"""Artifacts of a perf run: pytest-benchmark JSON and storage with the `ascend` block, the JSON
report's environment and per-test metrics, stock `pytest-benchmark compare` reading what we
stored, and a progress line per measured configuration."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

PERF_SUITE = Path(__file__).resolve().parents[1] / "perf"
GENERATION_KEYS = {"ttft_ms", "tpot_ms", "itl_p95_ms", "e2e_ms", "prompt_tokens", "output_tokens",
                   "output_tokens_per_s", "batch_size", "roofline_fraction"}


@pytest.fixture(scope="module")
def perf_run(tmp_path_factory, shared_cache):
    """One run of part of the real perf suite with every report switched on."""
    out = tmp_path_factory.mktemp("perf-run")
    cmd = [
        sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
        str(PERF_SUITE / "test_single_request.py"), str(PERF_SUITE / "test_batch_sweep.py"),
        "-m", "npu", "-k", "short_qa or batch_throughput and 2",
        f"--benchmark-json={out / 'out.json'}", "--json-report",
        f"--json-report-file={out / 'r.json'}", "--benchmark-autosave",
        f"--benchmark-storage=file://{out / 'storage'}", "--ascend-cache", str(shared_cache),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=out, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return {
        "stdout": proc.stdout, "dir": out,
        "benchmarks": json.loads((out / "out.json").read_text()),
        "report": json.loads((out / "r.json").read_text()),
    }


def test_every_generation_benchmark_carries_plausible_metrics(perf_run):
    benchmarks = perf_run["benchmarks"]["benchmarks"]
    assert {b["name"] for b in benchmarks} == {
        "test_single_request_latency[short_qa]", "test_batch_throughput[2]"}
    for bench in benchmarks:
        info = bench["extra_info"]
        assert GENERATION_KEYS <= info.keys(), bench["name"]
        assert info["ttft_ms"] > 0 and info["tpot_ms"] > 0 and info["itl_p95_ms"] > 0
        assert info["output_tokens_per_s"] == pytest.approx(
            info["output_tokens"] / (info["e2e_ms"] / 1e3), rel=1e-9)
        assert 0 < info["roofline_fraction"] <= 1.05
        assert bench["stats"]["rounds"] == len(bench["stats"]["data"]) >= 3
    sweep = next(b for b in benchmarks if b["name"] == "test_batch_throughput[2]")
    assert sweep["extra_info"]["batch_size"] == 2 and sweep["extra_info"]["scaling_vs_batch1"] > 0


def test_machine_info_and_json_report_carry_the_same_ascend_block(perf_run):
    block = perf_run["benchmarks"]["machine_info"]["ascend"]
    assert block["smoke"] is True and block["model"] == "tiny" and block["device_kind"] == "cpu"
    assert block["parameters"] > 0 and block["dtype"] == "float32"
    assert block["device_limits"]["bandwidth_gb_s"] > 0
    assert {"cann", "driver", "torch", "torch_npu", "transformers", "sglang"} <= block.keys()
    environment = perf_run["report"]["environment"]
    assert environment["ascend"] == block
    assert "Python" in environment  # pytest-metadata's facts are kept too


def test_json_report_metadata_holds_each_tests_metrics(perf_run):
    by_name = {b["fullname"].split("::")[-1]: b["extra_info"]
               for b in perf_run["benchmarks"]["benchmarks"]}
    called = [t for t in perf_run["report"]["tests"] if t["outcome"] == "passed"]
    assert len(called) == 2
    for test in called:
        assert test["metadata"] == by_name[test["nodeid"].split("::")[-1]]


def test_stock_pytest_benchmark_compare_reads_the_stored_run(perf_run):
    storage = f"file://{perf_run['dir'] / 'storage'}"
    compare = subprocess.run(
        [str(Path(sys.executable).with_name("pytest-benchmark")), "--storage", storage, "compare"],
        capture_output=True, text=True, timeout=120,
    )
    assert compare.returncode == 0, compare.stderr
    assert "test_single_request_latency[short_qa]" in compare.stdout
    assert "test_batch_throughput[2]" in compare.stdout


def test_each_measured_configuration_prints_a_progress_line(perf_run):
    lines = [line for line in perf_run["stdout"].splitlines() if "TPOT" in line]
    assert any(line.startswith("pytest-ascend: test_single_request_latency[short_qa]: TTFT")
               for line in lines)
    assert any("test_batch_throughput[2]" in line and "tok/s" in line for line in lines)


def test_runs_without_ascend_tests_add_no_ascend_block(pytester, monkeypatch):
    monkeypatch.delenv("PYTEST_ASCEND_CACHE")  # a configured option would plan the session
    pytester.makepyfile("def test_plain(benchmark):\n    benchmark(sum, [1, 2])\n")
    result = pytester.runpytest("--benchmark-json=out.json")
    result.assert_outcomes(passed=1)
    assert "ascend" not in json.loads((pytester.path / "out.json").read_text())["machine_info"]
