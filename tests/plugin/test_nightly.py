"""`pytest-ascend nightly` for real: nights stored and gated, and SIGTERM mid-benchmark leaving
every report written and the history still gated. Its exit codes and night folders alone:
test_verdict_nightly.py."""

import json
import os
import signal
import subprocess
import sys
import time

from conftest import ctrl_c_as_in_a_terminal
from pytest_ascend.history.nightly_outcome import EXIT_CANNOT_COMPARE, EXIT_OK, EXIT_STOPPED
from pytest_ascend.reports.results_log import read_results_log

SUITE = """
import os
import time

import pytest

pytestmark = pytest.mark.npu


def test_a_benchmark(benchmark, npu_device):
    def sleep():
        time.sleep(float(os.environ.get("NIGHT_SLEEP", "0.01")))

    benchmark.pedantic(sleep, rounds=int(os.environ.get("NIGHT_ROUNDS", "5")), iterations=1)
"""


def nightly(workdir, **env):
    return subprocess.Popen(
        [sys.executable, "-m", "pytest_ascend", "nightly", "--out", "out", "--storage", "store",
         "--", "test_night.py", "-p", "no:cacheprovider", "-q"], cwd=workdir,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, **env}, preexec_fn=ctrl_c_as_in_a_terminal)


def test_nights_are_gated_and_sigterm_mid_benchmark_keeps_every_report(tmp_path):
    (tmp_path / "test_night.py").write_text(SUITE)
    first = nightly(tmp_path)
    out, _ = first.communicate(timeout=300)
    assert first.returncode == EXIT_CANNOT_COMPARE, out[-3000:]
    assert "exit 2: nothing earlier to compare this run with" in out
    second = nightly(tmp_path)
    out, _ = second.communicate(timeout=300)
    assert second.returncode == EXIT_OK, out[-3000:]
    nights = sorted((tmp_path / "out").iterdir())
    assert len(nights) == 2
    for name in ("report.json", "results.jsonl", "history.md", "history.json", "history.html",
                 "history.png", "dashboard/index.html"):
        assert (nights[1] / name).stat().st_size, name
    third = nightly(tmp_path, NIGHT_SLEEP="0.2", NIGHT_ROUNDS="200")
    deadline = time.monotonic() + 120
    log = None
    while time.monotonic() < deadline and third.poll() is None:
        folders = [f for f in (tmp_path / "out").iterdir() if f not in nights]
        log = folders[0] / "results.jsonl" if folders else None
        if log is not None and log.exists() and log.read_text().strip():
            break
        time.sleep(0.5)
    time.sleep(3)  # inside the benchmark's 40 s of rounds
    third.send_signal(signal.SIGTERM)
    out, _ = third.communicate(timeout=300)
    assert third.returncode == EXIT_STOPPED, out[-3000:]
    assert "SIGTERM: stopping the suite" in out and "exit 5: the run was stopped" in out
    night = log.parent
    report = json.loads((night / "report.json").read_text())
    assert report["exitcode"] == 2
    records = read_results_log(night / "results.jsonl")
    assert records[-1]["type"] == "session_end" and "SIGTERM" in records[-1]["status"]
    assert json.loads((night / "history.json").read_text())["contexts"]
    assert (night / "dashboard" / "index.html").stat().st_size
