"""The server lifecycle: ready only when healthy, early exits and timeouts reported with the
log, and the whole process tree gone afterwards, Ctrl-C included. A stand-in HTTP process
tree exercises the lifecycle code; the Ctrl-C test uses the real SGLang where CI has it."""

import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

from conftest import SGLANG_PYTHON, ctrl_c_as_in_a_terminal
from pytest_ascend.processes import free_port, stop_process_tree
from pytest_ascend.serving.sglang_client import SGLangClient
from pytest_ascend.serving.sglang_server import ServerError, ServerProcess

STAND_IN = textwrap.dedent("""
    import http.server, multiprocessing, os, sys, time

    def child():
        time.sleep(3600)

    class Health(http.server.BaseHTTPRequestHandler):
        started = time.monotonic()
        def do_GET(self):
            ready = time.monotonic() - self.started > float(sys.argv[2])
            self.send_response(200 if ready else 503)
            self.end_headers()
        def log_message(self, *args):
            print("request", *args, flush=True)

    if __name__ == "__main__":
        worker = multiprocessing.Process(target=child)  # a worker, as SGLang's scheduler
        worker.start()
        print("stand-in starting: pids", os.getpid(), worker.pid, flush=True)
        http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Health).serve_forever()
""")


@pytest.fixture
def stand_in(tmp_path):
    script = tmp_path / "stand_in.py"
    script.write_text(STAND_IN)

    def make(ready_after_s=1.0, timeout_s=30.0):
        port = free_port()
        argv = [sys.executable, str(script), str(port), str(ready_after_s)]
        return ServerProcess(argv, f"http://127.0.0.1:{port}", tmp_path / "server.log",
                             timeout_s=timeout_s)

    return make


def tree_of(pid):
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def test_ready_when_healthy_and_the_whole_tree_stops(stand_in):
    server = stand_in(ready_after_s=1.0)
    with server:
        procs = tree_of(server.process.pid)
        assert len(procs) >= 2
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in procs)
    assert "stand-in starting" in server.log_tail()


def test_an_early_exit_is_reported_with_the_log(tmp_path):
    argv = [sys.executable, "-c", "print('bad flag: --tensor-paralel'); raise SystemExit(3)"]
    server = ServerProcess(argv, f"http://127.0.0.1:{free_port()}", tmp_path / "log",
                           timeout_s=30)
    with pytest.raises(ServerError, match=r"exited with code 3 .*bad flag: --tensor-paralel"):
        server.__enter__()


def test_a_server_that_never_gets_healthy_times_out_and_is_killed(stand_in):
    server = stand_in(ready_after_s=3600, timeout_s=3)
    with pytest.raises(ServerError, match="not healthy after 3 s"):
        server.__enter__()
    assert server.process is None
    started = re.search(r"pids (\d+) (\d+)", server.log_path.read_text())
    assert started, "the stand-in never started its worker"
    for pid in map(int, started.groups()):
        assert not psutil.pid_exists(pid) or \
            psutil.Process(pid).status() == psutil.STATUS_ZOMBIE, f"process {pid} outlived it"


def test_a_fatal_startup_error_fails_at_once_not_at_the_timeout(tmp_path):
    """A scheduler that crashed (its traceback in the log) while the launcher hangs on: the
    wait ends at the traceback with its exception line, not after the whole timeout."""
    crash = ("import sys, time\n"
             "print('Traceback (most recent call last):')\n"
             "print('  File \"scheduler.py\", line 1, in <module>')\n"
             "print('OSError: [Errno 98] error while attempting to bind: address already in use')\n"
             "sys.stdout.flush()\n"
             "time.sleep(3600)\n")
    server = ServerProcess([sys.executable, "-c", crash], f"http://127.0.0.1:{free_port()}",
                           tmp_path / "log", timeout_s=300)
    started = time.monotonic()
    with pytest.raises(ServerError, match=r"failed to start .*: OSError: \[Errno 98\].*already "
                                          r"in use"):
        server.__enter__()
    assert time.monotonic() - started < 30 and server.process is None


def test_a_server_killed_mid_session_is_named_as_such(stand_in):
    """kill -9 of the server while tests use it: the next request says the server died and
    how, not "Connection refused"."""
    with stand_in(ready_after_s=0.5) as server:
        client = SGLangClient(server.base_url, gone=server.exit_reason)
        os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait(timeout=10)
        with pytest.raises(ServerError, match=r"the SGLang server exited with signal 9 "
                                              r"\(log: .*\): request"):
            client.server_info()


def test_ctrl_c_mid_session_leaves_no_server_behind(pytester):
    if SGLANG_PYTHON is None:
        pytest.skip("no SGLang here: set PYTEST_ASCEND_SGLANG_PYTHON to an interpreter with "
                    "sglang (CI builds one with .ci/sglang-cpu/install.sh)")
    pytester.makepyfile("""
        import time
        def test_long(sglang_server):
            print("TEST-RUNNING", flush=True)
            time.sleep(600)
    """)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-s", "--sglang-launch",
         "--sglang-python", SGLANG_PYTHON, str(pytester.path)],
        cwd=pytester.path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ}, preexec_fn=ctrl_c_as_in_a_terminal,
    )
    trees = []
    try:
        port, seen, deadline = None, [], time.monotonic() + 300
        for line in proc.stdout:
            seen.append(line)
            found = re.search(r"--port (\d+)", line)
            port = port or (found and found.group(1))
            if "TEST-RUNNING" in line or time.monotonic() > deadline:
                break
        assert port and "TEST-RUNNING" in seen[-1], "".join(seen[-30:])
        server_procs = [p for p in psutil.process_iter(["cmdline"])
                        if f"--port {port}" in " ".join(p.info["cmdline"] or [])]
        assert server_procs, "no server process found while the test ran"
        trees = [q for p in server_procs for q in tree_of(p.pid)]
        proc.send_signal(signal.SIGINT)
        output = proc.communicate(timeout=120)[0]
        assert "KeyboardInterrupt" in output or "Interrupted" in output
        gone, alive = psutil.wait_procs(trees, timeout=30)
        assert not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE], \
            f"left behind: {[p.pid for p in alive]}"
    finally:  # a failed check must not leave the inner session and its server running
        stop_process_tree(proc.pid, grace_s=5)
        for leftover in trees:
            if leftover.is_running():
                leftover.kill()


def test_a_server_that_cannot_start_fails_its_tests_in_one_line(pytester):
    pytester.makepyfile("def test_served(sglang_server):\n    pass\n")
    result = pytester.runpytest("--sglang-launch", "--sglang-python", "/no/such/python")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*--sglang-launch: cannot start /no/such/python*"])
    assert "Traceback" not in result.stdout.str()


def test_a_url_without_a_server_fails_its_tests_in_one_line(pytester):
    pytester.makepyfile("def test_served(sglang_server):\n    pass\n")
    url = f"http://127.0.0.1:{free_port()}"
    result = pytester.runpytest("--sglang-url", url)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"*--sglang-url {url}: no healthy SGLang server there*"])


def test_a_real_server_killed_mid_session_is_reported_as_such(pytester):
    if SGLANG_PYTHON is None:
        pytest.skip("no SGLang here: set PYTEST_ASCEND_SGLANG_PYTHON to an interpreter with "
                    "sglang (CI builds one with .ci/sglang-cpu/install.sh)")
    pytester.makepyfile("""
        import os
        import signal

        from pytest_ascend.ascend_session import of

        def test_after_the_server_died(sglang_server, pytestconfig):
            launched = of(pytestconfig).server.process
            os.killpg(launched.process.pid, signal.SIGKILL)  # the OOM killer, say
            launched.process.wait(timeout=60)
            sglang_server.generate("hello", 4)
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--sglang-launch",
                                           f"--sglang-python={SGLANG_PYTHON}")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*ServerError: the SGLang server exited with signal 9 (log: *"])
    assert "Connection refused" not in result.stdout.str()
