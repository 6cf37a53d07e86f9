"""--ascend-profile and `pytest-ascend history --diff-profiles` for real: profiles of the tiny
model's timed regions on this CPU, one with a planted slower operator (extra matmuls in its
MLPs), which must rank first. The ranking rule alone: test_verdict_profiles.py."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_ascend.cli import main
from pytest_ascend.platforms.cpu import CpuDevice, CpuPlatform
from pytest_ascend.profiling.capture import TimedRegion, profile_call
from pytest_ascend.profiling.diff import ProfileDiffError, diff_runs, find_run
from pytest_ascend.profiling.operators import rank_changes

DATA = Path(__file__).parent / "data" / "profiles"
REPO = Path(__file__).resolve().parents[2]
SHORT_QA = "tests/perf/test_single_request.py::test_single_request_latency[short_qa]"


def test_a_bad_expression_is_a_one_line_usage_error(pytester):
    result = pytester.runpytest("--ascend-profile=decode or (")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--ascend-profile*not an expression as -k takes*"])
    assert "Traceback" not in result.stderr.str()


# A profile of the tiny model, on this CPU ----------------------------------------------------


def test_an_extra_matmul_in_one_layer_ranks_first(tiny, tmp_path):
    """The domain path alone: the same four forward passes profiled twice, the second with
    sixteen extra 256 x 256 matmuls in layer 0's MLP (tens of milliseconds, well above a
    shared CPU's noise); aten::mm's self time must rise most."""
    import torch

    model = tiny.model
    ids = tiny.tokenizer("The capital of France is", return_tensors="pt").input_ids
    square = torch.randn(256, 256)

    def forward():
        with torch.inference_mode():
            for _ in range(4):
                model(input_ids=ids)

    def extra_matmuls(module, args, output):
        for _ in range(16):
            torch.mm(square, square)

    platform, device = CpuPlatform(), CpuDevice()
    forward()
    before = profile_call(platform, device, TimedRegion(forward), tmp_path / "a", tmp_path)
    hook = model.model.layers[0].mlp.register_forward_hook(extra_matmuls)
    try:
        after = profile_call(platform, device, TimedRegion(forward), tmp_path / "b", tmp_path)
    finally:
        hook.remove()
    assert before.trace == "a/trace.json.gz" and (tmp_path / before.trace).stat().st_size > 0
    ranked = rank_changes(before, after)
    assert ranked[0].name == "aten::mm", [c.describe() for c in ranked[:5]]
    assert after.operators["aten::mm"].calls == before.operators["aten::mm"].calls + 64
    assert len(list(tmp_path.glob("a/trace.json.gz"))) == 1  # the last of three calls


def run_suite(storage, *extra, env=None):
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-m", "npu",
         SHORT_QA, "--ascend-profile=short_qa", "--benchmark-autosave",
         f"--benchmark-storage=file://{storage}", *extra],
        capture_output=True, text=True, cwd=REPO, timeout=600, env=env,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    return proc


@pytest.fixture(scope="module")
def two_profiled_runs(tmp_path_factory):
    """Two stored runs of the short prompt, profiled; the second with the planted plugin."""
    storage = tmp_path_factory.mktemp("profiled")
    first = run_suite(storage)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(DATA), os.environ.get(
        "PYTHONPATH", "")])}
    run_suite(storage, "-p", "slower_mlp", env=env)
    return storage, first


def test_the_planted_slower_operator_ranks_first_between_two_stored_runs(two_profiled_runs,
                                                                         capsys):
    storage, _ = two_profiled_runs
    assert main(["history", "--storage", str(storage), "--diff-profiles", "0001", "0002",
                 "--format", "json"]) == 0
    (bench,) = json.loads(capsys.readouterr().out)["benchmarks"]
    assert bench["benchmark"] == SHORT_QA and bench["tool"] == "torch.profiler"
    assert bench["operators"][0]["operator"] == "aten::mm"
    assert bench["operators"][0]["delta_us"] > 0
    assert bench["headline"].startswith("aten::mm +")
    assert main(["history", "--storage", str(storage), "--diff-profiles", "0001", "0002"]) == 0
    table_out = capsys.readouterr().out
    assert "(torch.profiler, host self time)" in table_out
    assert table_out.split("change\n", 1)[1].split()[0] == "aten::mm"


def test_the_stored_figures_are_not_profiled_and_the_trace_is_beside_them(two_profiled_runs):
    storage, first = two_profiled_runs
    (path,) = storage.glob("*/0001_*.json")
    (bench,) = json.loads(path.read_text())["benchmarks"]
    rounds = bench["extra_info"]["rounds"]["ttft_ms"]
    assert bench["stats"]["rounds"] == len(rounds)
    trace = storage / bench["extra_info"]["profile"]["trace"]
    assert trace.name == "trace.json.gz" and trace.stat().st_size > 1000
    assert trace.relative_to(storage).parts[0] == "profiles"
    assert f"profiled {SHORT_QA}" in first.stdout + first.stderr


def test_runs_that_cannot_be_compared_are_one_line(two_profiled_runs, tmp_path, capsys):
    storage, _ = two_profiled_runs
    (path,) = storage.glob("*/0001_*.json")
    data = json.loads(path.read_text())
    del data["benchmarks"][0]["extra_info"]["profile"]
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps(data))
    assert main(["history", "--diff-profiles", str(path), str(bare)]) == 2
    assert "no profiled benchmark (run the suite with --ascend-profile" in capsys.readouterr().err
    assert main(["history", "--storage", str(storage), "--diff-profiles", "000", "0002"]) == 2
    assert "000: 2 stored runs start with it" in capsys.readouterr().err
    with pytest.raises(ProfileDiffError, match="no such file, and no --storage"):
        find_run("0001", None)
    data["benchmarks"][0]["extra_info"]["profile"] = {"tool": "torch_npu.profiler",
                                                      "time_of": "device", "operators": {}}
    npu = tmp_path / "npu.json"
    npu.write_text(json.dumps(data))
    with pytest.raises(ProfileDiffError, match="profiles of different kinds do not compare"):
        diff_runs(path, npu)
