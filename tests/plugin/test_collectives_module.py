"""The collectives module for real on gloo: 2 and 4 ranks, 2 nodes x 2 ranks through a
c10d rendezvous, exact checks that catch a wrong result, and no rank left behind when the
launcher is killed or times out."""

import json
import os
import signal
import subprocess
import time

import psutil
import pytest
import torch.distributed as dist

from pytest_ascend.box.collectives import (
    OPERATIONS,
    Collective,
    bus_factor,
    element_count,
    operation_unsupported,
    parse_size,
    plan_operations,
    sizes,
    supported_operations,
)
from pytest_ascend.box.launch import torchrun_argv
from pytest_ascend.processes import die_with_parent, free_port, run_helper

MODULE = "pytest_ascend.box.collectives"


GLOO = supported_operations("gloo")  # all five from torch 2.2 on


def arguments(out, *extra):
    return ["--out", str(out), "--device", "cpu", "-b", "8", "-e", "256K", "-f", "8",
            "--iters", "5", "--warmup", "2", "--ops", ",".join(GLOO), *extra]


def processes_of(marker):
    """Live processes whose command line mentions `marker` (a run's unique output path)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if any(marker in part for part in proc.info["cmdline"] or ()):
                found.append(proc)
        except psutil.NoSuchProcess:
            pass
    return [p for p in found if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def check_report(report, ranks, nodes=1):
    assert report["complete"] and report["world_size"] == ranks and report["nodes"] == nodes
    assert report["backend"] == "gloo"
    for operation in GLOO:
        counts = [element_count(operation, n, 4, ranks) for n in sizes(8, 256 << 10, 8)]
        measured = [r["count"] for r in report["results"] if r["operation"] == operation]
        assert measured == [count for count in counts if count], operation
    for r in report["results"]:
        assert r["correct"] and r["mismatch"] is None, r
        assert r["bytes"] == r["count"] * 4
        assert r["algbw_gb_s"] == pytest.approx(r["bytes"] / (r["time_us"] / 1e6) / 1e9)
        assert r["busbw_gb_s"] == pytest.approx(r["algbw_gb_s"] * bus_factor(r["operation"],
                                                                              ranks))


@pytest.mark.parametrize("ranks", [2, 4])
def test_every_collective_is_exact_on_gloo(tmp_path, ranks):
    out = tmp_path / "c.json"
    proc = run_helper(torchrun_argv(MODULE, ranks, arguments(out)), timeout_s=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    check_report(json.loads(out.read_text()), ranks)
    assert f"collectives: {GLOO[-1]} done" in proc.stderr


def test_two_nodes_of_two_ranks_meet_through_c10d(tmp_path):
    endpoint = f"127.0.0.1:{free_port()}"
    outs = [tmp_path / f"node{i}.json" for i in range(2)]
    nodes = [subprocess.Popen(
        torchrun_argv(MODULE, 2, arguments(out), nodes=2, endpoint=endpoint,
                      run_id=f"fleet-{os.getpid()}"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        preexec_fn=die_with_parent) for out in outs]
    try:
        results = [node.communicate(timeout=300) for node in nodes]
    finally:
        for node in nodes:
            if node.poll() is None:
                os.killpg(node.pid, signal.SIGKILL)
    assert [node.returncode for node in nodes] == [0, 0], [err[-1500:] for _, err in results]
    written = [out for out in outs if out.exists()]  # global rank 0 sits on one of them
    assert len(written) == 1
    check_report(json.loads(written[0].read_text()), 4, nodes=2)


def test_killing_the_launcher_takes_every_rank_with_it(tmp_path):
    out = tmp_path / "killed.json"
    log = (tmp_path / "stderr.txt").open("w")
    launcher = subprocess.Popen(
        torchrun_argv(MODULE, 2, ["--out", str(out), "--device", "cpu", "-b", "8", "-e",
                                  "4M", "-f", "2", "--iters", "200"]),
        stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not out.exists() and time.monotonic() < deadline:  # mid-run: one op written
            time.sleep(0.2)
        assert out.exists(), (tmp_path / "stderr.txt").read_text()[-1500:]
        assert len(processes_of(str(out))) == 3  # the launcher and two ranks
        launcher.kill()  # SIGKILL: torchrun cannot pass anything on
        launcher.wait()
        deadline = time.monotonic() + 30
        while processes_of(str(out)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert processes_of(str(out)) == [], "ranks outlived their launcher"
    finally:
        for proc in processes_of(str(out)):
            proc.kill()
    partial = json.loads(out.read_text())
    assert partial["complete"] is False and partial["results"]  # what finished is kept


def test_a_timeout_stops_the_whole_tree(tmp_path):
    out = tmp_path / "slow.json"
    argv = torchrun_argv(MODULE, 2, ["--out", str(out), "--device", "cpu", "-e", "64M",
                                     "--iters", "500"])
    with pytest.raises(subprocess.TimeoutExpired):
        run_helper(argv, timeout_s=8)
    assert processes_of(str(out)) == []


@pytest.fixture
def one_rank_group(tmp_path):
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0,
                            world_size=1)
    yield
    dist.destroy_process_group()


@pytest.mark.parametrize("operation", OPERATIONS)
def test_a_wrong_result_is_caught_and_located(one_rank_group, operation):
    import torch

    if operation_unsupported(operation, "gloo"):
        pytest.skip(operation_unsupported(operation, "gloo"))
    collective = Collective(operation, 64, 0, 1, torch.float32, torch.device("cpu"))
    assert collective.check() is None
    honest = collective.call

    def corrupting():
        honest()
        collective.output[17] += 1

    collective.call = corrupting
    assert collective.check().startswith("element 17 of 64: ")


@pytest.mark.parametrize("text, expected", [("8", 8), ("8K", 8192), ("64M", 64 << 20),
                                            ("1G", 1 << 30), ("2MiB", 2 << 20)])
def test_sizes_read_like_nccl_tests(text, expected):
    assert parse_size(text) == expected


def test_bus_factors_follow_nccl_tests():
    assert bus_factor("all_reduce", 8) == pytest.approx(1.75)
    assert bus_factor("all_gather", 8) == bus_factor("reduce_scatter", 8) == \
        bus_factor("all_to_all", 8) == pytest.approx(0.875)
    assert bus_factor("broadcast", 8) == 1.0


@pytest.mark.parametrize("version, unsupported", [("2.1.0+cu121", {"all_gather", "reduce_scatter"}),
                                                  ("2.2.0", set()), ("2.13.0+cpu", set())])
def test_gloo_lacks_two_operations_before_torch_2_2(version, unsupported):
    found = {op for op in OPERATIONS if operation_unsupported(op, "gloo", version)}
    assert found == unsupported
    assert not any(operation_unsupported(op, "hccl", version) for op in OPERATIONS)


def test_a_job_asked_for_every_operation_runs_what_the_backend_has_and_names_the_rest():
    run, skipped = plan_operations(OPERATIONS, "gloo", "2.1.0")
    assert run == ["all_reduce", "broadcast", "all_to_all"]  # in the order asked
    assert set(skipped) == {"all_gather", "reduce_scatter"}
    assert all("torch >= 2.2" in reason for reason in skipped.values())
    assert plan_operations(["broadcast", "all_reduce"], "hccl", "2.1.0") == (
        ["broadcast", "all_reduce"], {})
