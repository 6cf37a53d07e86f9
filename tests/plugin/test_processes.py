"""A helper the suite starts never outlives it: not a timeout, not a Ctrl-C, not a kill -9 of
the process that started it (the memory-capacity helper used to outlive an OOM-killed pytest
by ~15 s)."""

import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

from conftest import ctrl_c_as_in_a_terminal
from pytest_ascend.processes import run_helper, stop_process_tree

SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]

# A parent that runs the sleeper through run_helper, as pytest runs the footprint helper.
PARENT = textwrap.dedent(f"""
    import sys
    from pytest_ascend.processes import run_helper
    try:
        run_helper({SLEEPER!r}, timeout_s=600)
    except KeyboardInterrupt:
        sys.exit(130)
""")


@pytest.fixture
def parent_and_helper():
    """A parent running the sleeper through run_helper, and the sleeper; whatever a failing
    test leaves of them is stopped afterwards."""
    parent = subprocess.Popen([sys.executable, "-c", PARENT], preexec_fn=ctrl_c_as_in_a_terminal)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            children = psutil.Process(parent.pid).children(recursive=True)
            if children:
                yield parent, children[0]
                break
            time.sleep(0.05)
        else:
            raise AssertionError("the helper never started")
    finally:
        stop_process_tree(parent.pid, grace_s=1)
        for proc in psutil.process_iter(["cmdline"]):
            if proc.info["cmdline"] == SLEEPER:
                proc.kill()


def gone(process, within_s=10):
    """Whether `process` ends within `within_s`: exited, or a zombie (dead, its exit status
    not yet collected by whichever process adopted it)."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            if process.status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def test_the_helper_dies_when_its_parent_is_killed_outright(parent_and_helper):
    parent, helper = parent_and_helper
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    assert gone(helper), "the helper outlived a kill -9 of its parent"


def test_ctrl_c_in_the_parent_stops_the_helper(parent_and_helper):
    parent, helper = parent_and_helper
    parent.send_signal(signal.SIGINT)  # the helper is in its own session: only pytest gets it
    assert parent.wait(timeout=30) == 130
    assert gone(helper, within_s=1), "the helper outlived its parent's Ctrl-C"


def test_a_helper_past_its_timeout_is_stopped():
    started = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired):
        run_helper(SLEEPER, timeout_s=1)
    assert time.monotonic() - started < 15
    assert not [p for p in psutil.process_iter(["cmdline"])
                if p.info["cmdline"] == SLEEPER], "the helper outlived its timeout"
