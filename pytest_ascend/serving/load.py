"""Open-loop load on a streaming server, each request measured as SGLang's bench_serving
measures it.

Open loop means requests leave at their scheduled times (Poisson, constant or all at once),
whether or not earlier ones have finished: that is how traffic reaches a server, and it is
what makes queueing show in TTFT as the rate grows. An optional cap on concurrency holds a
request until a slot frees, as bench_serving's `--max-concurrency` does.

A run is bounded: it sends at most its requests, stops sending at its time limit, and gives
each request its own timeout. Every request ends as a result: completed, failed (with the
error), timed out, still running at the end, or not sent. None is dropped, so
completed + failed = sent, and sent + not sent = requested.

Definitions (bench_serving's): TTFT is the time from sending to the first streamed chunk;
ITL each gap between tokens (a chunk of k tokens after a gap g counts as k gaps of g / k);
TPOT = (E2E - TTFT) / (output tokens - 1); concurrency = the sum of request latencies / the
run's duration. Nothing here knows pytest or SGLang: the
request goes through a `send` callable that streams (arrival time, chunk) pairs.
"""

from __future__ import annotations

import math
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional, Sequence, Union

from pytest_ascend.measure.stats import percentile

ARRIVALS = ("poisson", "constant", "burst")
Send = Callable[["LoadRequest"], Iterator[tuple[float, dict]]]


@dataclass(frozen=True)
class LoadRequest:
    prompt: Union[str, list]  # text, or token ids
    max_new_tokens: int
    label: str = ""  # the workload it came from

    @property
    def input_tokens(self) -> Optional[int]:
        return len(self.prompt) if isinstance(self.prompt, list) else None


@dataclass
class RequestResult:
    request: LoadRequest
    scheduled_s: float  # offset from the run's start at which it was due
    sent_s: Optional[float] = None  # offset at which it left (later under a concurrency cap)
    ttft_ms: Optional[float] = None
    itl_ms: list = field(default_factory=list)
    e2e_ms: Optional[float] = None
    input_tokens: Optional[int] = None
    output_tokens: int = 0
    cached_tokens: int = 0
    error: Optional[str] = None

    @property
    def sent(self) -> bool:
        return self.sent_s is not None

    @property
    def ok(self) -> bool:
        return self.sent and self.error is None and self.e2e_ms is not None

    @property
    def tpot_ms(self) -> Optional[float]:
        if not self.ok or self.output_tokens < 2:
            return None
        return (self.e2e_ms - self.ttft_ms) / (self.output_tokens - 1)


@dataclass(frozen=True)
class LoadSpec:
    rate: float  # requests per second; math.inf sends them all at once
    arrival: str = "poisson"
    max_concurrency: Optional[int] = None
    time_limit_s: float = 300.0  # no request leaves after this
    request_timeout_s: float = 120.0  # a request running longer fails as timed out
    seed: int = 0

    def __post_init__(self) -> None:
        if self.arrival not in ARRIVALS:
            raise ValueError(f"arrival {self.arrival!r} is not one of {', '.join(ARRIVALS)}")
        if not self.rate > 0:
            raise ValueError(f"request rate {self.rate} must be positive")


def arrival_offsets(count: int, rate: float, arrival: str, seed: int = 0) -> list[float]:
    """When each of `count` requests is due, in seconds from the start: exponential gaps
    (a Poisson process) of mean 1/rate, equal gaps of 1/rate, or all at 0 (a burst)."""
    if arrival == "burst" or math.isinf(rate):
        return [0.0] * count
    if arrival == "constant":
        return [i / rate for i in range(count)]
    draw = random.Random(seed)
    offsets, now = [], 0.0
    for _ in range(count):
        offsets.append(now)
        now += draw.expovariate(rate)
    return offsets


@dataclass
class LoadRun:
    spec: LoadSpec
    results: list
    duration_s: float

    @property
    def sent(self) -> int:
        return sum(r.sent for r in self.results)

    @property
    def completed(self) -> list:
        return [r for r in self.results if r.ok]

    @property
    def failed(self) -> list:
        return [r for r in self.results if r.sent and not r.ok]

    @property
    def not_sent(self) -> int:
        return sum(not r.sent for r in self.results)

    def summary(self) -> dict:
        """bench_serving's report of the run: counts, throughputs, and mean / median / P90 /
        P99 of TTFT, TPOT, ITL and E2E over the completed requests (ITL over every gap)."""
        done = self.completed
        duration = self.duration_s
        out: dict[str, Any] = {
            "request_rate": self.spec.rate, "arrival": self.spec.arrival,
            "max_concurrency": self.spec.max_concurrency,
            "requests": len(self.results), "sent": self.sent, "completed": len(done),
            "failed": len(self.failed), "not_sent": self.not_sent, "duration_s": duration,
        }
        inputs = sum(r.input_tokens or 0 for r in done)
        outputs = sum(r.output_tokens for r in done)
        cached = sum(r.cached_tokens for r in done)
        out.update(
            total_input_tokens=inputs, total_output_tokens=outputs, cached_tokens=cached,
            cache_hit_rate=cached / inputs if inputs else None,
            request_throughput=len(done) / duration if duration > 0 else None,
            input_throughput=inputs / duration if duration > 0 else None,
            output_throughput=outputs / duration if duration > 0 else None,
            concurrency=sum(r.e2e_ms for r in done) / 1e3 / duration if duration > 0 else None,
        )
        series = {
            "ttft_ms": [r.ttft_ms for r in done],
            "tpot_ms": [r.tpot_ms for r in done if r.tpot_ms is not None],
            "itl_ms": [gap for r in done for gap in r.itl_ms],
            "e2e_ms": [r.e2e_ms for r in done],
        }
        for name, values in series.items():
            out.update(describe(name, values))
        out["errors"] = sorted({r.error for r in self.failed})[:5]
        return out


def describe(name: str, values: Sequence[float]) -> dict:
    """mean / median / P90 / P99 of one latency, as `mean_ttft_ms`, `p99_ttft_ms`, ..."""
    stem = name[:-3] if name.endswith("_ms") else name
    if not values:
        return {f"{stat}_{stem}_ms": None for stat in ("mean", "median", "p90", "p99")}
    return {f"mean_{stem}_ms": sum(values) / len(values),
            f"median_{stem}_ms": percentile(values, 50),
            f"p90_{stem}_ms": percentile(values, 90),
            f"p99_{stem}_ms": percentile(values, 99)}


def run_load(send: Send, requests: Sequence[LoadRequest], spec: LoadSpec,
             clock: Callable[[], float] = time.perf_counter) -> LoadRun:
    """Send `requests` open-loop as `spec` says and wait (boundedly) for their answers."""
    offsets = arrival_offsets(len(requests), spec.rate, spec.arrival, spec.seed)
    results = [RequestResult(req, offset) for req, offset in zip(requests, offsets)]
    slots = threading.BoundedSemaphore(spec.max_concurrency) if spec.max_concurrency else None
    lock = threading.Lock()
    threads = []
    start = clock()
    stop_sending = start + spec.time_limit_s

    def worker(result: RequestResult) -> None:
        try:
            _one_request(send, result, start, spec.request_timeout_s, clock, lock)
        finally:
            if slots is not None:
                slots.release()

    for result in results:
        due = start + result.scheduled_s
        if due > stop_sending:
            break
        _sleep_until(due, clock)
        if slots is not None and not slots.acquire(timeout=max(0.0, stop_sending - clock())):
            break
        if clock() > stop_sending:
            if slots is not None:
                slots.release()
            break
        result.sent_s = clock() - start
        thread = threading.Thread(target=worker, args=(result,), daemon=True,
                                  name=f"load-request-{len(threads)}")
        threads.append(thread)
        thread.start()
    deadline = clock() + spec.request_timeout_s + 5.0
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - clock()))
    with lock:
        for thread, result in zip(threads, [r for r in results if r.sent]):
            if thread.is_alive() and result.error is None:
                result.error = "still running when the run ended"
    return LoadRun(spec, results, clock() - start)


def token_gaps(arrivals: Sequence[float], tokens_so_far: Sequence[int]) -> list:
    """ITL per token (ms): a chunk that brought k new tokens after a gap g counts as k gaps
    of g / k (bench_serving's rule; a server may stream several tokens in one chunk)."""
    gaps = []
    for i in range(1, len(arrivals)):
        new = tokens_so_far[i] - tokens_so_far[i - 1]
        if new > 0:
            gaps += [(arrivals[i] - arrivals[i - 1]) * 1e3 / new] * new
    return gaps


def _sleep_until(when: float, clock: Callable[[], float]) -> None:
    while (left := when - clock()) > 0:
        time.sleep(min(left, 0.05))


def _one_request(send: Send, result: RequestResult, start: float, timeout_s: float,
                 clock: Callable[[], float], lock: threading.Lock) -> None:
    sent = start + result.sent_s
    arrivals, counts, meta = [], [], {}
    try:
        for arrived, chunk in send(result.request):
            meta = chunk.get("meta_info") or meta
            arrivals.append(arrived)
            counts.append(int(meta.get("completion_tokens") or len(arrivals)))
            if arrived - sent > timeout_s:
                raise TimeoutError(f"timed out after {timeout_s:g} s")
        if not arrivals:
            raise RuntimeError("the server streamed nothing")
        end = clock()
    except Exception as exc:  # every failure is this request's result, never lost
        with lock:
            result.error = f"{type(exc).__name__}: {exc}"[:300]
        return
    with lock:
        result.ttft_ms = (arrivals[0] - sent) * 1e3
        result.itl_ms = token_gaps(arrivals, counts)
        result.e2e_ms = (end - sent) * 1e3
        result.output_tokens = int(meta.get("completion_tokens") or len(arrivals))
        result.input_tokens = int(meta.get("prompt_tokens") or result.request.input_tokens or 0)
        result.cached_tokens = int(meta.get("cached_tokens") or 0)
