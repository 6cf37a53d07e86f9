"""One report failing never costs the others: a Ctrl-C inside a benchmark, or a report path
that cannot be written, leaves every other report written and a status that says so."""

import json
import os
import subprocess
import sys

from conftest import ctrl_c_as_in_a_terminal
from pytest_ascend.report_guard import EXIT_REPORT_NOT_WRITTEN
from pytest_ascend.reports.results_log import read_results_log

BENCHMARKS = """
import os
import signal
import time


def test_finished(benchmark):
    benchmark.pedantic(sum, args=([1, 2],), rounds=3, iterations=1)


def test_interrupted(benchmark):
    def round_that_is_interrupted():
        if os.environ.get("INTERRUPT_IN_BENCHMARK"):
            os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C in the terminal delivers
            time.sleep(5)

    benchmark.pedantic(round_that_is_interrupted, rounds=3, iterations=1)


def test_never_reached():
    pass
"""

REPORTS = ("--benchmark-json=bench.json", "--json-report", "--json-report-file=report.json",
           "--ascend-results-log=run.jsonl")


def run(pytester, *args, env=None):
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
                          cwd=pytester.path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})},
                          preexec_fn=ctrl_c_as_in_a_terminal)


def test_ctrl_c_inside_a_benchmark_keeps_every_report(pytester):
    pytester.makepyfile(BENCHMARKS)
    done = run(pytester, *REPORTS, env={"INTERRUPT_IN_BENCHMARK": "1"})
    assert done.returncode == 2, done.stdout[-3000:] + done.stderr[-3000:]
    assert "min() arg is an empty sequence" not in done.stdout + done.stderr
    saved = json.loads((pytester.path / "bench.json").read_text())
    assert [b["name"] for b in saved["benchmarks"]] == ["test_finished"]
    assert json.loads((pytester.path / "report.json").read_text())["exitcode"] == 2
    end = read_results_log(pytester.path / "run.jsonl")[-1]
    assert end["type"] == "session_end" and end["exitstatus"] == 2


def test_sigterm_inside_a_benchmark_keeps_every_report_as_ctrl_c_does(pytester):
    """SIGTERM is what cron, systemd, Jenkins and Slurm send at a timeout."""
    pytester.makepyfile(BENCHMARKS.replace("signal.SIGINT", "signal.SIGTERM"))
    done = run(pytester, *REPORTS, env={"INTERRUPT_IN_BENCHMARK": "1"})
    assert done.returncode == 2, done.stdout[-3000:] + done.stderr[-3000:]
    saved = json.loads((pytester.path / "bench.json").read_text())
    assert [b["name"] for b in saved["benchmarks"]] == ["test_finished"]
    assert json.loads((pytester.path / "report.json").read_text())["exitcode"] == 2
    end = read_results_log(pytester.path / "run.jsonl")[-1]
    assert end["type"] == "session_end" and end["exitstatus"] == 2
    assert end["status"] == "terminated by SIGTERM"


def test_an_unwritable_benchmark_json_is_one_line_and_the_rest_is_written(pytester):
    pytester.makepyfile(BENCHMARKS)
    done = run(pytester, "--benchmark-json=/dev/full", *REPORTS[1:])
    assert done.returncode == EXIT_REPORT_NOT_WRITTEN
    assert "Traceback" not in done.stdout + done.stderr
    lines = [line for line in done.stdout.splitlines() if "did not save" in line]
    assert lines == ["pytest-ascend: pytest-benchmark did not save its report (/dev/full): "
                     "OSError: [Errno 28] No space left on device"]
    assert json.loads((pytester.path / "report.json").read_text())["summary"]["passed"] == 3
    assert read_results_log(pytester.path / "run.jsonl")[-1]["exitstatus"] == \
        EXIT_REPORT_NOT_WRITTEN


def test_an_unwritable_json_report_is_a_failure_not_a_green_run(pytester):
    pytester.makepyfile(BENCHMARKS)
    done = run(pytester, "--benchmark-json=bench.json", "--json-report",
               "--json-report-file=/dev/full")
    assert done.returncode == EXIT_REPORT_NOT_WRITTEN
    assert "pytest-ascend: pytest-json-report did not write /dev/full" in done.stdout
    assert len(json.loads((pytester.path / "bench.json").read_text())["benchmarks"]) == 2


def test_a_failing_test_keeps_its_own_status(pytester):
    pytester.makepyfile("def test_fails():\n    assert False\n")
    done = run(pytester, "--benchmark-json=/dev/full")
    assert done.returncode == 1  # pytest's 'tests failed' wins over a report that was not written
