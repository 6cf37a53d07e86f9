"""A device test blocked in native code is ended by the watchdog, which first writes every
report for the tests that finished, the hung test's record with every thread's stack, and
the session's end; the exit status says it was a hang."""

import json
import os
import subprocess
import sys
import time

import pytest

from pytest_ascend.reports.results_log import read_results_log
from pytest_ascend.watchdog import EXIT_HUNG

SUITE = """
import pytest
import torch


def test_finished(benchmark, npu_device):
    benchmark.pedantic(sum, args=([1, 2],), rounds=3, iterations=1)


@pytest.mark.timeout(1)
def test_hangs(npu_device):
    {hang}


def test_never_reached(npu_device):
    pass
"""

BLOCKS_IN_C = "torch.futures.Future().wait()  # a device sync that never returns"
# One ATen call of ~120 chained 4096x4096 matmuls: minutes of work inside C, no Python (at
# 2048 torch 2.1's MKL finished before the watchdog's grace ran out).
SPINS_IN_C = ("q, _ = torch.linalg.qr(torch.randn(4096, 4096)); "
              "torch.linalg.matrix_power(q, 2**62 - 1)")


@pytest.mark.parametrize("hang", [BLOCKS_IN_C, SPINS_IN_C], ids=["blocks", "spins"])
def test_a_hang_in_native_code_ends_the_run_with_every_report(pytester, hang):
    pytester.makepyfile(SUITE.format(hang=hang))
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-s",
         "--benchmark-json=bench.json", "--json-report", "--json-report-file=report.json",
         "--ascend-results-log=run.jsonl"],
        cwd=pytester.path, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTEST_ASCEND_CACHE": os.environ["PYTEST_ASCEND_CACHE"]})
    assert done.returncode == EXIT_HUNG, done.stdout[-3000:] + done.stderr[-3000:]
    assert time.monotonic() - started < 120
    assert "test_hangs (call) made no progress for" in done.stderr

    records = read_results_log(pytester.path / "run.jsonl")
    hung = next(r for r in records if r.get("outcome") == "timeout")
    assert hung["nodeid"].endswith("::test_hangs") and hung["when"] == "call"
    assert any("test_hangs" in stack for stack in hung["stacks"].values())
    end = records[-1]
    assert end["type"] == "session_end" and end["exitstatus"] == EXIT_HUNG
    assert end["status"].startswith("aborted by a hang: ")
    assert not any(r.get("nodeid", "").endswith("test_never_reached") for r in records)

    saved = json.loads((pytester.path / "bench.json").read_text())
    assert [b["name"] for b in saved["benchmarks"]] == ["test_finished"]
    report = json.loads((pytester.path / "report.json").read_text())
    assert report["exitcode"] == EXIT_HUNG
    finished = {t["nodeid"].split("::")[-1]: t["outcome"] for t in report["tests"]}
    assert finished["test_finished"] == "passed"


def test_a_test_within_its_budget_is_untouched(pytester):
    pytester.makepyfile("""
        import time
        import pytest

        @pytest.mark.timeout(5)
        def test_quick(npu_device):
            time.sleep(0.2)
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_a_hang_stops_the_launched_server_before_exiting(pytester):
    """The watchdog's os._exit skips fixture teardown, so the server's stop never runs: the
    parent-death signal (processes.die_with_parent) is what must take the whole tree down."""
    from conftest import SGLANG_PYTHON

    if SGLANG_PYTHON is None:
        pytest.skip("no SGLang here: set PYTEST_ASCEND_SGLANG_PYTHON to an interpreter with "
                    "sglang (CI builds one with .ci/sglang-cpu/install.sh)")
    pytester.makepyfile("""
        import pytest
        import torch

        def test_server_up(sglang_server):  # the launch is not under the 2 s budget below
            assert sglang_server.healthy()

        @pytest.mark.timeout(2)
        def test_hangs_with_a_server(sglang_server, pytestconfig):
            import psutil
            from pytest_ascend.ascend_session import of
            launcher = psutil.Process(of(pytestconfig).server.process.process.pid)
            tree = [launcher, *launcher.children(recursive=True)]
            print("SERVER-PIDS", ",".join(str(p.pid) for p in tree), flush=True)
            torch.futures.Future().wait()
    """)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-s", "--sglang-launch",
         f"--sglang-python={SGLANG_PYTHON}"],
        cwd=pytester.path, capture_output=True, text=True, timeout=300)
    assert done.returncode == EXIT_HUNG, done.stdout[-3000:] + done.stderr[-3000:]
    import psutil

    pids = [int(p) for p in done.stdout.split("SERVER-PIDS", 1)[1].split()[0].split(",")]
    assert len(pids) >= 2, "the server's worker processes were not seen"
    alive = [pid for pid in pids if psutil.pid_exists(pid)
             and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
    assert not alive, f"server processes outlived the run: {alive}"


def test_a_phase_that_returns_after_its_expiry_is_held_while_the_reports_are_written():
    """A long call in C that does come back, late, must not run on into the next test and
    a session end of its own while the watchdog writes the reports (a spinning matmul that
    ended mid-write once left a second session_end, with exit status 1, after the hang's)."""
    import threading

    from pytest_ascend.watchdog import Watchdog

    expired = threading.Event()
    watchdog = Watchdog(lambda hang: expired.set())  # the real one never returns: it exits
    watchdog.arm("test_late", "call", 0.05)
    assert expired.wait(timeout=10)
    came_back = threading.Thread(target=watchdog.disarm, daemon=True)
    came_back.start()
    came_back.join(timeout=1)
    assert came_back.is_alive(), "the late phase went on while the reports were written"


def test_an_expiry_fires_once_and_leaves_no_thread_spinning():
    """A stand-in on_expiry returns (the plugin's ends the process): the watchdog must then
    stay quiet, not fire again on every pass and hold the GIL for the rest of the process
    (a leaked one slowed a whole CI session's serving sweep 100-fold)."""
    import threading
    import time

    from pytest_ascend.watchdog import Watchdog

    fired = []
    expired = threading.Event()
    watchdog = Watchdog(lambda hang: (fired.append(hang), expired.set()))
    watchdog.arm("test_late", "call", 0.05)
    assert expired.wait(timeout=10)
    cpu = time.process_time()
    time.sleep(0.5)
    assert len(fired) == 1
    assert time.process_time() - cpu < 0.2, "the watchdog kept the CPU busy after firing"


def test_a_closed_watchdog_ends_its_thread():
    import threading

    from pytest_ascend.watchdog import Watchdog

    before = {t.ident for t in threading.enumerate()}
    watchdog = Watchdog(lambda hang: None)
    ours = [t for t in threading.enumerate() if t.ident not in before]
    watchdog.close()
    for thread in ours:
        thread.join(timeout=5)
    assert not [t for t in ours if t.is_alive()]


def test_a_slow_session_setup_is_not_a_hang_under_timeout_func_only(pytester):
    """pytest-timeout's policy is the watchdog's: with timeout_func_only a session fixture's
    setup (a 14B model load takes minutes) is not timed, so a 1 s budget that the setup
    outlives is no hang; the same budget still ends a call that blocks in C."""
    pytester.makeini("[pytest]\ntimeout_func_only = true\n")
    pytester.makepyfile(f"""
        import time
        import pytest
        import torch

        @pytest.fixture(scope="session")
        def ascend_slow_load(npu_device):
            time.sleep(3)

        @pytest.mark.timeout(1)
        def test_after_a_slow_load(ascend_slow_load):
            pass

        @pytest.mark.timeout(1)
        def test_hangs(npu_device):
            {BLOCKS_IN_C}
    """)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-s", "-v"],
        cwd=pytester.path, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTEST_ASCEND_CACHE": os.environ["PYTEST_ASCEND_CACHE"]})
    assert done.returncode == EXIT_HUNG, done.stdout[-3000:] + done.stderr[-3000:]
    assert "test_after_a_slow_load PASSED" in done.stdout
    assert "test_hangs (call) made no progress for" in done.stderr
