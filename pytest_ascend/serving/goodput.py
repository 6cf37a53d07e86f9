"""Service-level objectives, goodput, and the request-rate sweep that finds where a server
stops meeting them.

Goodput is the rate of requests that meet every SLO (bench_serving's and DistServe's
definition): a server that answers fast but late is not serving. The sweep raises the
offered rate step by step and stops once the server saturates; its headline is the highest
rate at which the P99s still met the SLOs with no request failing (MLPerf's Server scenario
asks the same question of its P99 targets).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

from pytest_ascend.serving.load import LoadRequest, LoadRun, LoadSpec, Send, run_load

# MLPerf Inference's Llama-2-70B Server targets: TTFT P99 2 s, TPOT P99 200 ms.
DEFAULT_SLO = "ttft_ms=2000,tpot_ms=200"
SLO_KEYS = ("ttft_ms", "tpot_ms", "e2e_ms")


@dataclass(frozen=True)
class Slo:
    """Latency targets per request (ms); a key left out is not an objective."""

    targets: tuple  # ((key, milliseconds), ...)

    @classmethod
    def parse(cls, text: str) -> "Slo":
        """`ttft_ms=2000,tpot_ms=200` (keys: ttft_ms, tpot_ms, e2e_ms)."""
        targets = []
        for item in text.split(","):
            key, sep, value = item.strip().partition("=")
            if not sep or key not in SLO_KEYS:
                raise ValueError(f"{item.strip()!r} is not key=milliseconds with a key from "
                                 f"{', '.join(SLO_KEYS)}")
            try:
                ms = float(value)
            except ValueError:
                ms = float("nan")
            if not ms > 0:
                raise ValueError(f"{key}={value!r} is not a positive number of milliseconds")
            targets.append((key, ms))
        if len({k for k, _ in targets}) != len(targets):
            raise ValueError("a key is given twice")
        return cls(tuple(targets))

    def text(self) -> str:
        return ",".join(f"{k}={v:g}" for k, v in self.targets)

    def met_by(self, result) -> bool:
        """One completed request met every target (TPOT only where it has one)."""
        if not result.ok:
            return False
        for key, target in self.targets:
            value = {"ttft_ms": result.ttft_ms, "tpot_ms": result.tpot_ms,
                     "e2e_ms": result.e2e_ms}[key]
            if value is not None and value > target:
                return False
        return True

    def p99_problems(self, summary: dict) -> list[str]:
        """Each target the run's P99 missed, in words."""
        missed = []
        for key, target in self.targets:
            p99 = summary.get(f"p99_{key[:-3]}_ms")
            if p99 is not None and p99 > target:
                missed.append(f"P99 {key} {p99:.0f} > {target:g}")
        return missed


def goodput(run: LoadRun, slo: Slo) -> Optional[float]:
    """Requests per second that completed within every SLO."""
    if run.duration_s <= 0:
        return None
    return sum(slo.met_by(r) for r in run.results) / run.duration_s


@dataclass
class SweepPoint:
    rate: float
    summary: dict
    goodput: Optional[float]
    missed: list  # SLO P99s missed, and failures, in words

    @property
    def meets_slo(self) -> bool:
        return not self.missed

    def as_dict(self) -> dict:
        return {**self.summary, "goodput": self.goodput, "meets_slo": self.meets_slo,
                "missed": self.missed}


@dataclass
class Sweep:
    slo: Slo
    points: list = field(default_factory=list)
    stopped_because: str = "every rate was tried"

    @property
    def saturation_rate(self) -> float:
        """The highest offered rate at which every P99 met its SLO with nothing failing
        (0 when even the lowest did not)."""
        return max((p.rate for p in self.points if p.meets_slo), default=0.0)

    @property
    def peak_goodput(self) -> float:
        return max((p.goodput or 0.0 for p in self.points), default=0.0)

    def curve(self) -> list[dict]:
        return [p.as_dict() for p in self.points]


def sweep_rates(send: Send, requests_at: Callable[[float], Sequence[LoadRequest]],
                rates: Sequence[float], slo: Slo, *, spec_at: Callable[[float], LoadSpec],
                progress: Callable[[str], None] = lambda _: None) -> Sweep:
    """Run the load at each rate in turn (lowest first) until the server saturates: a
    request fails, a P99 misses its SLO, or goodput falls below the previous rate's."""
    result = Sweep(slo)
    for rate in sorted(rates):
        run = run_load(send, requests_at(rate), spec_at(rate))
        summary = run.summary()
        missed = slo.p99_problems(summary)
        if summary["failed"] or summary["not_sent"]:
            missed.append(f"{summary['failed']} failed and {summary['not_sent']} not sent of "
                          f"{summary['requests']}")
        point = SweepPoint(rate, summary, goodput(run, slo), missed)
        previous = result.points[-1] if result.points else None
        result.points.append(point)
        progress(point_line(point, slo))
        if summary["failed"] or summary["not_sent"]:
            result.stopped_because = f"requests failed at {rate:g}/s"
            break
        if missed:
            result.stopped_because = f"the SLO was missed at {rate:g}/s"
            break
        if previous is not None and (point.goodput or 0) < (previous.goodput or 0):
            result.stopped_because = f"goodput fell at {rate:g}/s"
            break
    return result


def point_line(point: SweepPoint, slo: Slo) -> str:
    s = point.summary

    def ms(key: str) -> str:
        value = s.get(key)
        return "-" if value is None else f"{value:.0f}"

    verdict = "meets the SLO" if point.meets_slo else "; ".join(point.missed)
    return (f"load {point.rate:g} req/s: {s['completed']}/{s['requests']} done in "
            f"{s['duration_s']:.1f} s, TTFT P50/P99 {ms('median_ttft_ms')}/{ms('p99_ttft_ms')} "
            f"ms, TPOT P50/P99 {ms('median_tpot_ms')}/{ms('p99_tpot_ms')} ms, goodput "
            f"{point.goodput or 0:.2f} req/s ({slo.text()}): {verdict}")


FULL_RATES, FULL_REQUESTS = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0), 100
# The built-in model on a CPU server answers 32 tokens in ~0.1 s and serves ~15 req/s on 2
# cores: three rates of 24 requests cross its saturation in ~15 s.
SMOKE_RATES, SMOKE_REQUESTS = (4.0, 8.0, 16.0), 24


@dataclass(frozen=True)
class SweepConfig:
    """The serving sweep a session runs: its rates, requests per rate, lengths, SLO,
    arrival process and concurrency cap (the --sglang-* options, smoke defaults where the
    built-in model is served)."""

    rates: tuple
    requests: int
    lengths: object  # workloads.Lengths
    slo: Slo
    arrival: str
    max_concurrency: Optional[int]
    request_timeout_s: float = 120.0

    @classmethod
    def of(cls, settings, smoke: bool) -> "SweepConfig":
        rates = settings.sglang_rates or (SMOKE_RATES if smoke else FULL_RATES)
        requests = settings.sglang_requests or (SMOKE_REQUESTS if smoke else FULL_REQUESTS)
        return cls(tuple(rates), requests, settings.sglang_lengths, settings.sglang_slo,
                   settings.sglang_arrival, settings.sglang_max_concurrency)

    def spec(self, rate: float) -> LoadSpec:
        """A run at `rate` that sends for at most twice its nominal length (plus a minute)."""
        return LoadSpec(rate, self.arrival, self.max_concurrency,
                        time_limit_s=2 * self.requests / rate + 60,
                        request_timeout_s=self.request_timeout_s)
