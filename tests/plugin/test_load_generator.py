"""The load generator against a stand-in server with known delays (`http.server` in a thread,
streaming SGLang's native format): the independent check of its timing, its open loop, its
concurrency cap, and its accounting of every request, failed ones included."""

import json
import math
import os
import re
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psutil
import pytest

from conftest import SGLANG_PYTHON
from pytest_ascend.processes import run_helper
from pytest_ascend.serving.goodput import Slo, SweepConfig, sweep_rates
from pytest_ascend.serving.health import ServerHealthSampler
from pytest_ascend.serving.load import LoadRequest, LoadSpec, arrival_offsets, run_load, token_gaps
from pytest_ascend.serving.plot import write_sweep_plot
from pytest_ascend.serving.sglang_client import SGLangClient, load_sender
from pytest_ascend.serving.workloads import (
    Lengths,
    cache_cold,
    multi_turn_requests,
    random_requests,
    shared_system_prompt_requests,
)
from pytest_ascend.settings import SettingsError, resolve_settings

REPO = Path(__file__).resolve().parents[2]
FAIL, HANG = 1, 2  # a prompt starting with one of these makes the stand-in fail or hang


class QuietServer(ThreadingHTTPServer):
    """A client that gave up (on the hung request) is no error to print: a daemon handler
    thread prints it after its test has ended, into whichever test runs then."""

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


class StandIn:
    """An SGLang-like /generate that waits `first_s` before the first token and `gap_s`
    before each next one, and counts the requests in flight."""

    def __init__(self, first_s=0.08, gap_s=0.015, tokens_per_chunk=1):
        self.first_s, self.gap_s, self.per_chunk = first_s, gap_s, tokens_per_chunk
        self.in_flight = self.max_in_flight = 0
        self.arrived = []
        self.served = []  # (first chunk written, last written) after receiving, seconds
        self.lock = threading.Lock()
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                received = time.perf_counter()
                with stand_in.lock:
                    stand_in.arrived.append(received)
                    stand_in.in_flight += 1
                    stand_in.max_in_flight = max(stand_in.max_in_flight, stand_in.in_flight)
                self.counted = True
                try:
                    stand_in.answer(self, body, received)
                finally:
                    stand_in.leave(self)

            def log_message(self, *args):
                pass

        self.server = QuietServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, handler, body, received):
        ids, new = body["input_ids"], body["sampling_params"]["max_new_tokens"]
        if ids[0] == FAIL:
            handler.send_response(500)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.end_headers()
        time.sleep(60 if ids[0] == HANG else self.first_s)
        done, first_written = 0, None
        while done < new:
            if done:
                time.sleep(self.gap_s * self.per_chunk)
            done = min(new, done + (self.per_chunk if done else 1))
            if done == new:  # before the last token leaves: the client may send the next
                self.leave(handler)  # request the moment it has it
            chunk = {"text": "x" * done, "meta_info": {
                "prompt_tokens": len(ids), "completion_tokens": done, "cached_tokens": 3}}
            handler.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            handler.wfile.flush()
            first_written = first_written or time.perf_counter()
        handler.wfile.write(b"data: [DONE]\n\n")
        handler.wfile.flush()
        with self.lock:  # what the server itself took, on the client's clock (one process)
            self.served.append((first_written - received, time.perf_counter() - received))
        handler.close_connection = True

    def leave(self, handler):
        """A request stops counting as in flight once (its last token, an error, a hang)."""
        with self.lock:
            if handler.counted:
                handler.counted = False
                self.in_flight -= 1

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stand_in():
    made = []

    def make(**kwargs):
        made.append(StandIn(**kwargs))
        return made[-1]

    yield make
    for server in made:
        server.close()


def requests(count, new_tokens=8, first_token=10):
    return [LoadRequest([first_token, 11, 12, 13], new_tokens, "t") for _ in range(count)]


def load(server, reqs, timeout_s=30.0, **spec):
    send = load_sender(SGLangClient(server.url), timeout_s)
    return run_load(send, reqs, LoadSpec(**{"rate": 20.0, "arrival": "constant", **spec}))


class ScriptedClock:
    """run_load's clock, driven by the requests: each request thread reads the time its
    script has reached, the sending thread 0 until every script has ended and then the
    latest end. No sleep is timed: the figures are exact."""

    def __init__(self, requests):
        self.local = threading.local()
        self.lock = threading.Lock()
        self.ends, self.requests = [], requests

    def __call__(self):
        if hasattr(self.local, "now"):
            return self.local.now
        with self.lock:
            return max(self.ends) if len(self.ends) == self.requests else 0.0

    def send(self, first_s, gaps_s, per_chunk=1):
        """A `send` whose request gets its first token `first_s` after it left and each next
        chunk of `per_chunk` tokens `gaps_s[i]` after the one before."""
        def send(request):
            now, count = first_s, 1
            self.local.now = now
            yield now, {"meta_info": {"completion_tokens": count, "prompt_tokens": 4,
                                      "cached_tokens": 3}}
            for gap in gaps_s:
                now, count = now + gap, count + per_chunk
                self.local.now = now
                yield now, {"meta_info": {"completion_tokens": count, "prompt_tokens": 4,
                                          "cached_tokens": 3}}
            with self.lock:
                self.ends.append(now)
        return send


def test_ttft_tpot_itl_and_e2e_follow_bench_servings_definitions_exactly():
    """Ten requests sent at once (burst), each answered 8 tokens: the first after 80 ms,
    then every 15 ms, on a scripted clock."""
    clock = ScriptedClock(10)
    run = run_load(clock.send(0.080, [0.015] * 7), requests(10), LoadSpec(20.0, "burst"),
                   clock=clock)
    summary = run.summary()
    assert (summary["completed"], summary["failed"], summary["sent"]) == (10, 0, 10)
    assert summary["median_ttft_ms"] == pytest.approx(80.0)
    assert summary["p99_tpot_ms"] == pytest.approx(15.0)
    assert summary["median_itl_ms"] == pytest.approx(15.0)
    assert summary["mean_e2e_ms"] == pytest.approx(80.0 + 7 * 15.0)
    assert summary["duration_s"] == pytest.approx(0.185)
    assert summary["total_output_tokens"] == 80 and summary["total_input_tokens"] == 40
    assert summary["cached_tokens"] == 30 and summary["cache_hit_rate"] == pytest.approx(0.75)
    assert summary["output_throughput"] == pytest.approx(80 / 0.185)
    assert summary["request_throughput"] == pytest.approx(10 / 0.185)
    assert summary["concurrency"] == pytest.approx(10.0)  # all ten ran the whole time


def test_ttft_and_tpot_reproduce_the_servers_delays(stand_in):
    """Over HTTP, against what the stand-in itself measured: a sleep never returns early
    and load only adds to the client's figures, so they are bounded below, never above
    (the exact arithmetic is the scripted-clock test's)."""
    server = stand_in(first_s=0.08, gap_s=0.015)
    run = load(server, requests(10))
    summary = run.summary()
    assert summary["completed"] == 10 and summary["failed"] == 0
    assert summary["median_ttft_ms"] >= 80 and summary["median_tpot_ms"] >= 15
    assert summary["median_itl_ms"] >= 15 and summary["median_e2e_ms"] >= 80 + 7 * 15
    # Each request: sent before the server received it, its first chunk read after the
    # server wrote it. So, summed over the requests in any pairing:
    assert sum(r.ttft_ms for r in run.results) >= 1e3 * sum(f for f, _ in server.served)
    assert sum(r.e2e_ms for r in run.results) >= 1e3 * sum(e for _, e in server.served)
    assert all(r.ttft_ms < r.e2e_ms for r in run.results)
    assert summary["total_output_tokens"] == 80 and summary["total_input_tokens"] == 40
    assert summary["cached_tokens"] == 30 and summary["cache_hit_rate"] == pytest.approx(0.75)
    assert summary["output_throughput"] == pytest.approx(80 / summary["duration_s"])
    assert summary["concurrency"] == pytest.approx(
        10 * summary["mean_e2e_ms"] / 1e3 / summary["duration_s"])


def test_a_chunk_of_several_tokens_counts_as_that_many_gaps(stand_in):
    assert token_gaps([0.0, 0.010, 0.040], [1, 2, 5]) == pytest.approx([10, 10, 10, 10])
    clock = ScriptedClock(1)
    run = run_load(clock.send(0.05, [0.03, 0.03], per_chunk=3), requests(1, 7),
                   LoadSpec(1.0, "burst"), clock=clock)
    assert run.results[0].itl_ms == pytest.approx([10.0] * 6)
    assert run.results[0].tpot_ms == pytest.approx(10.0) and run.results[0].output_tokens == 7
    server = stand_in(first_s=0.05, gap_s=0.01, tokens_per_chunk=3)
    summary = load(server, requests(4, new_tokens=7)).summary()
    assert summary["total_output_tokens"] == 28
    assert summary["median_itl_ms"] >= 10  # a 30 ms gap per 3 tokens, at least


def test_arrivals_are_poisson_constant_or_a_burst():
    poisson = arrival_offsets(4000, 8.0, "poisson", seed=3)
    gaps = [b - a for a, b in zip(poisson, poisson[1:])]
    mean = sum(gaps) / len(gaps)
    assert mean == pytest.approx(1 / 8, rel=0.05)
    std = math.sqrt(sum((g - mean) ** 2 for g in gaps) / len(gaps))
    assert std == pytest.approx(mean, rel=0.08)  # exponential: std = mean
    assert poisson == arrival_offsets(4000, 8.0, "poisson", seed=3)
    assert arrival_offsets(4, 2.0, "constant") == [0, 0.5, 1.0, 1.5]
    assert arrival_offsets(3, 2.0, "burst") == arrival_offsets(3, math.inf, "poisson") == [0] * 3


def test_the_loop_is_open_a_slow_server_does_not_delay_sending(stand_in):
    server = stand_in(first_s=0.5, gap_s=0.01)  # each request takes longer than the gaps
    run = load(server, requests(6, new_tokens=2), rate=10.0)
    late = [r.sent_s - r.scheduled_s for r in run.results]
    # A closed loop would leave each request after the 0.5 s answer of the one before; half
    # that is a margin a loaded machine's thread scheduling stays far inside.
    assert max(late) < 0.25, f"requests left late: {late}"
    assert server.max_in_flight >= 4


def test_a_concurrency_cap_holds_requests_until_a_slot_frees(stand_in):
    server = stand_in(first_s=0.1, gap_s=0.01)
    run = load(server, requests(9, new_tokens=2), rate=math.inf, arrival="burst",
               max_concurrency=3)
    assert run.summary()["completed"] == 9
    assert server.max_in_flight == 3


def test_failed_and_hung_requests_are_counted_never_dropped(stand_in):
    server = stand_in(first_s=0.02, gap_s=0.005)
    mixed = requests(4) + requests(2, first_token=FAIL) + requests(1, first_token=HANG)
    started = time.monotonic()
    run = load(server, mixed, timeout_s=1.0)
    summary = run.summary()
    assert time.monotonic() - started < 10, "a hung request held up the run"
    assert (summary["sent"], summary["completed"], summary["failed"]) == (7, 4, 3)
    assert summary["completed"] + summary["failed"] == summary["sent"]
    errors = " ".join(summary["errors"])
    assert "500" in errors and "timed out" in errors
    assert summary["total_output_tokens"] == 32  # only completed requests count


def test_requests_due_after_the_time_limit_are_not_sent_and_say_so(stand_in):
    server = stand_in(first_s=0.01, gap_s=0.001)
    # due at 0, 0.5, 1.0, 1.5, ...: three before the limit, with 0.25 s to spare either way
    summary = load(server, requests(10, new_tokens=2), rate=2.0, time_limit_s=1.25).summary()
    assert summary["sent"] == 3 and summary["not_sent"] == 7
    assert summary["requests"] == 10 and summary["completed"] == 3


def test_the_sweep_stops_where_the_slo_is_missed_and_reports_the_curve(stand_in, tmp_path):
    server = stand_in(first_s=0.08, gap_s=0.01)
    send = load_sender(SGLangClient(server.url), 30)

    def sweep(slo):
        return sweep_rates(send, lambda rate: requests(6, new_tokens=3), [8, 16, 32],
                           Slo.parse(slo), spec_at=lambda rate: LoadSpec(rate, "constant"))

    generous = sweep("ttft_ms=1000,tpot_ms=200")
    assert [p.rate for p in generous.points] == [8, 16, 32]
    assert generous.saturation_rate == 32 and generous.stopped_because == "every rate was tried"
    point = generous.points[0]
    assert point.goodput == pytest.approx(6 / point.summary["duration_s"])
    strict = sweep("ttft_ms=50")
    assert len(strict.points) == 1 and strict.saturation_rate == 0
    assert strict.points[0].goodput == 0
    assert strict.stopped_because == "the SLO was missed at 8/s"
    assert strict.points[0].missed[0].startswith("P99 ttft_ms ")
    png = write_sweep_plot(generous, tmp_path / "sweep.png", "stand-in")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_sweep_stops_at_the_first_failures(stand_in):
    server = stand_in(first_s=0.01, gap_s=0.001)
    send = load_sender(SGLangClient(server.url), 30)
    sweep = sweep_rates(send, lambda rate: requests(3) + requests(1, first_token=FAIL),
                        [4, 8], Slo.parse("ttft_ms=2000"),
                        spec_at=lambda rate: LoadSpec(rate, "constant"))
    assert len(sweep.points) == 1 and sweep.stopped_because == "requests failed at 4/s"
    assert not sweep.points[0].meets_slo and sweep.saturation_rate == 0


def test_server_health_sees_the_process_tree_and_its_exit():
    child = subprocess.Popen([sys.executable, "-c", "import time; x = bytearray(50 << 20); "
                              "time.sleep(30)"])
    try:
        with ServerHealthSampler(child.pid, None, interval_s=0.1,
                                 gone=lambda: None if child.poll() is None else "exited") as health:
            time.sleep(0.5)
            child.kill()
            child.wait()
            time.sleep(0.3)
        report = health.report()
        assert report["server_rss_peak_bytes"] > 50 << 20
        assert report["server_exit"] == "exited"
        assert report["device_used_peak_bytes"] is None  # a CPU: no device figure
    finally:
        child.kill()


# Workloads and options -----------------------------------------------------------------------


def test_random_requests_have_the_lengths_asked_for(tiny):
    tokenizer = tiny.tokenizer
    fixed = random_requests(20, Lengths(64, 16), tokenizer, seed=1)
    assert {len(r.prompt) for r in fixed} == {64} and {r.max_new_tokens for r in fixed} == {16}
    assert not set(tokenizer.all_special_ids) & {t for r in fixed for t in r.prompt}
    ranged = random_requests(200, Lengths(64, 16, 0.5), tokenizer, seed=1)
    lengths = {len(r.prompt) for r in ranged}
    assert min(lengths) >= 32 and max(lengths) <= 64 and len(lengths) > 10
    assert random_requests(5, Lengths(8, 2), tokenizer, seed=4) == \
        random_requests(5, Lengths(8, 2), tokenizer, seed=4)


def test_prefix_heavy_workloads_share_prefixes_and_their_cold_twins_do_not(tiny):
    tokenizer = tiny.tokenizer
    chats = multi_turn_requests(conversations=2, turns=3, output_len=8, tokenizer=tokenizer)
    by_chat = {}
    for request in chats:
        by_chat.setdefault(request.label.split("-")[0], []).append(request.prompt)
    for turns in by_chat.values():
        for earlier, later in zip(turns, turns[1:]):
            assert later[:len(earlier)] == earlier and len(later) > len(earlier)
    shared = shared_system_prompt_requests(4, 128, 8, tokenizer)
    common = min(len(r.prompt) for r in shared)
    assert all(r.prompt[:120] == shared[0].prompt[:120] for r in shared) and common > 128
    cold = cache_cold(shared, tokenizer)
    assert len({r.prompt[0] for r in cold}) == len(cold)
    assert [r.prompt[1:] for r in cold] == [r.prompt for r in shared]


def test_load_options_are_checked_in_one_line():
    def settings(**cli):
        return resolve_settings(cli=lambda spec: cli.get(spec.name), ini=lambda spec: None,
                                environ={})

    default = settings()
    config = SweepConfig.of(default, smoke=True)
    assert config.rates == (4.0, 8.0, 16.0) and config.requests == 24
    full = SweepConfig.of(settings(sglang_rates="2,1", sglang_requests="50",
                                   sglang_lengths="128:32:0.5",
                                   sglang_slo="ttft_ms=500,e2e_ms=9000"), smoke=False)
    assert full.rates == (1.0, 2.0) and full.requests == 50
    assert full.lengths == Lengths(128, 32, 0.5) and full.slo.text() == "ttft_ms=500,e2e_ms=9000"
    for name, bad, said in (("sglang_slo", "ttft=5", "is not key=milliseconds"),
                            ("sglang_slo", "ttft_ms=-1", "positive number of milliseconds"),
                            ("sglang_rates", "1,0", "positive request rates"),
                            ("sglang_lengths", "256", "INPUT:OUTPUT"),
                            ("sglang_requests", "0", "positive whole number"),
                            ("sglang_arrival", "gamma", "is not one of")):
        with pytest.raises(SettingsError) as refused:
            settings(**{name: bad})
        assert said in str(refused.value) and "\n" not in str(refused.value)


# The real server killed mid-sweep ------------------------------------------------------------

KILLER = """
import os, signal, threading, time

import pytest

from pytest_ascend.ascend_session import of


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item):
    launched = of(item.config).server.process
    def kill():
        time.sleep(float(os.environ["KILL_AFTER_S"]))
        print("KILLING", launched.process.pid, flush=True)
        os.killpg(launched.process.pid, signal.SIGKILL)  # the OOM killer, say
    threading.Thread(target=kill, daemon=True).start()
"""


def test_a_server_killed_mid_sweep_fails_clearly_with_every_request_counted(pytester):
    if SGLANG_PYTHON is None:
        pytest.skip("no SGLang here: set PYTEST_ASCEND_SGLANG_PYTHON to an interpreter with "
                    "sglang (CI builds one with .ci/sglang-cpu/install.sh)")
    pytester.makepyfile(killer_plugin=KILLER)
    sweep_test = f"{REPO / 'tests' / 'deploy' / 'test_serving_load.py'}::" \
                 f"test_request_rate_sweep_finds_the_saturation_rate"
    started = time.monotonic()
    # run_helper: its own process group, stopped whole if this test times out or fails
    proc = run_helper(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "killer_plugin",
         "-m", "sglang", "--sglang-launch", f"--sglang-python={SGLANG_PYTHON}",
         "--sglang-rates=4", "--sglang-requests=40", sweep_test],
        timeout_s=600, env={**os.environ, "KILL_AFTER_S": "3", "PYTHONPATH": str(pytester.path)})
    out = proc.stdout
    assert proc.returncode == 1, out[-3000:]
    assert time.monotonic() - started < 300
    pid = int(re.search(r"KILLING (\d+)", out).group(1))
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    port = re.search(r"--port (\d+)", out).group(1)
    left = [p for p in psutil.process_iter(["cmdline"])
            if f"--port {port}" in " ".join(p.info["cmdline"] or [])]
    assert not left, f"left behind: {[p.pid for p in left]}"
    failure = next(line for line in out.splitlines() if "the server went away" in line)
    assert "the SGLang server exited with signal 9" in failure
    counted = re.search(r"(\d+) of 40 requests failed at 4/s", failure)
    assert counted and int(counted.group(1)) > 0, failure
