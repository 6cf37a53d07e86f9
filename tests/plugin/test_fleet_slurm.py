"""The fleet through a real Slurm (CI starts one: .ci/slurm/start): deploy/slurm/fleet.sbatch
submitted as three tasks on this one machine standing for three boxes, one of them made slow
(a 40 ms delay before every forward pass: twice a decode step here, far above what
three suites sharing two cores do to each other), then the collectives across the three through
srun + torchrun's c10d rendezvous, then `pytest-ascend fleet` over what they wrote. The slow
box must be the one named, and the job's exit status must say so.

Skips without a running Slurm, saying so, unless PYTEST_ASCEND_REQUIRE_SLURM=1 (CI), where
that is a failure."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import skip_unless_required
from pytest_ascend.box.collectives import OPERATIONS, supported_operations

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "deploy" / "slurm" / "fleet.sbatch"
PLANT = Path(__file__).parent / "data" / "fleet"
SLOW_TASK = "2"


def slurm_problem():
    if shutil.which("sbatch") is None:
        return "no sbatch on PATH (CI starts a one-node Slurm: .ci/slurm/start)"
    try:
        state = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True,
                               timeout=20)
    except subprocess.TimeoutExpired:
        return "sinfo did not answer in 20 s"
    if state.returncode != 0 or "idle" not in state.stdout:
        return f"no idle Slurm node (sinfo: {(state.stdout + state.stderr).strip()[:200]})"
    return None


@pytest.fixture(scope="module")
def slurm():
    skip_unless_required(slurm_problem(), "PYTEST_ASCEND_REQUIRE_SLURM")


@pytest.fixture(scope="module")
def fleet_job(slurm, tmp_path_factory, shared_cache):
    """The job, run to its end: (its exit status, the results folder, its output)."""
    results = tmp_path_factory.mktemp("fleet-results")
    output = results / "job.out"
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("PYTEST_ASCEND_")}
    env.update(
        PYTEST_ASCEND_CACHE=str(shared_cache),
        PYTEST_ASCEND_FLEET_RESULTS=str(results),
        PYTEST_ASCEND_FLEET_ARGS="tests/perf/test_single_request.py -k short_qa -p slow_box "
                                 "-p no:cacheprovider",
        PYTEST_ASCEND_FLEET_CARDS="1",
        PYTEST_ASCEND_FLEET_BYTES="64K",
        PYTEST_ASCEND_SLOW_TASK=SLOW_TASK,
        # One thread a box: three boxes on two cores then share them evenly, where torch's
        # default threads would make the boxes' figures swing with the scheduler.
        OMP_NUM_THREADS="1",
        PYTHONPATH=os.pathsep.join(filter(None, [str(PLANT), env.get("PYTHONPATH")])),
        # the job's `python` is this interpreter, activated or not
        PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
    )
    submit = ["sbatch", "--parsable", "--wait", "--ntasks=3", "--ntasks-per-node=3",
              "--time=15", f"--output={output}", str(SCRIPT)]
    job = subprocess.Popen(submit, cwd=REPO, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = job.communicate(timeout=900)
    finally:
        if job.poll() is None:  # the test is leaving: so does the job
            job.kill()
        job_id = _first_line(job.stdout.read() if job.stdout and not job.stdout.closed else "")
        subprocess.run(["scancel", "--name=pytest-ascend-fleet"], timeout=30)
    text = output.read_text() if output.exists() else ""
    return job.returncode, results, text + stdout + stderr, job_id


def _first_line(text):
    return text.splitlines()[0] if text.strip() else ""


def test_the_slow_box_of_three_slurm_tasks_is_named(fleet_job):
    status, results, output, _ = fleet_job
    boxes = sorted(path.name for path in results.iterdir() if path.is_dir())
    assert len(boxes) == 3 and all("-task" in box for box in boxes), output
    for box in boxes:
        log = (results / box / "pytest.log").read_text()
        assert "1 passed" in log, log[-2000:]
        assert (results / box / "results.jsonl").stat().st_size > 0
    slow = next(box for box in boxes if box.endswith(f"-task{SLOW_TASK}"))
    report = json.loads((results / "fleet.json").read_text())
    assert report["flagged"] == [slow], output
    flags = [flag for group in report["groups"] for flag in group["flags"]]
    assert {flag["box"] for flag in flags} == {slow}
    assert "tpot_ms" in {flag["metric"] for flag in flags}, flags
    assert f"FLAGGED {slow}: " in output
    assert status == 1, output  # the fleet's verdict is the job's
    assert (results / "fleet.png").read_bytes()[:4] == b"\x89PNG"


def test_the_collectives_spanned_the_three_boxes_through_c10d(fleet_job):
    _, results, output, _ = fleet_job
    collectives = json.loads((results / "collectives.json").read_text())
    assert collectives["world_size"] == 3, output
    assert collectives["nodes"] == 3 and collectives["complete"] is True
    operations = {result["operation"] for result in collectives["results"]}
    assert operations == set(supported_operations("gloo"))  # all five from torch 2.2 on
    assert set(collectives["skipped"]) == set(OPERATIONS) - operations
    assert all(result["correct"] for result in collectives["results"])


def test_nothing_of_the_job_is_left_running(fleet_job):
    squeue = subprocess.run(["squeue", "-h", "--name=pytest-ascend-fleet"], capture_output=True,
                            text=True, timeout=30)
    assert squeue.stdout.strip() == ""
    leftover = subprocess.run(["pgrep", "-f", "pytest_ascend.box.collectives|slow_box"],
                              capture_output=True, text=True)
    assert leftover.stdout.strip() == ""
