"""Goodput and the SLO verdicts on synthetic request results: every objective counts (a
request late on any one of several SLOs is not good), the P99 check names each target it
missed, and the sweep's stopping rule and headline figures."""

import math
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_ascend.serving.goodput import (
    DEFAULT_SLO,
    FULL_RATES,
    FULL_REQUESTS,
    SMOKE_RATES,
    SMOKE_REQUESTS,
    Slo,
    Sweep,
    SweepConfig,
    SweepPoint,
    goodput,
    point_line,
    sweep_rates,
)
from pytest_ascend.serving.load import LoadRequest, LoadRun, LoadSpec, RequestResult
from pytest_ascend.serving.workloads import Lengths

REQUEST = LoadRequest([1, 2, 3], 5)


def result(ttft=100.0, tpot=10.0, tokens=5, error=None, sent=True):
    """A finished request: TTFT `ttft` ms, then `tokens - 1` tokens `tpot` ms apart."""
    r = RequestResult(REQUEST, 0.0, sent_s=0.0 if sent else None)
    if error is None and sent:
        r.ttft_ms, r.output_tokens = ttft, tokens
        r.e2e_ms = ttft + tpot * (tokens - 1)
    r.error = error
    return r


def loaded(results, duration=2.0):
    return LoadRun(LoadSpec(4.0, "constant"), results, duration)


THREE = Slo.parse("ttft_ms=200,tpot_ms=20,e2e_ms=250")


@pytest.mark.parametrize("ttft, tpot, met", [
    (100.0, 10.0, True),  # e2e 140
    (200.0, 10.0, True),  # TTFT at its target; e2e 240
    (201.0, 5.0, False),  # TTFT over
    (100.0, 21.0, False),  # TPOT over
    (100.0, 20.0, True),  # TPOT at its target; e2e 180
    (180.0, 18.0, False),  # TTFT and TPOT met, e2e 252 over
])
def test_a_request_meets_every_slo_or_is_not_good(ttft, tpot, met):
    assert THREE.met_by(result(ttft, tpot)) == met


@pytest.mark.parametrize("key_failing", ["ttft_ms", "tpot_ms", "e2e_ms"])
def test_missing_any_one_of_several_slos_is_missing(key_failing):
    """Each objective in turn is the only one missed: the request is not good (a check that
    stopped at the first key would pass the last two)."""
    slo = Slo.parse("ttft_ms=100,tpot_ms=10,e2e_ms=1000")
    r = {"ttft_ms": result(ttft=150.0, tpot=5.0), "tpot_ms": result(ttft=50.0, tpot=15.0),
         "e2e_ms": result(ttft=90.0, tpot=9.0, tokens=200)}[key_failing]
    assert not slo.met_by(r)
    assert goodput(loaded([r, result(50.0, 5.0)]), slo) == 0.5


def test_targets_met_exactly_are_met():
    slo = Slo.parse("ttft_ms=100,tpot_ms=10,e2e_ms=140")
    assert slo.met_by(result(ttft=100.0, tpot=10.0))


def test_a_failed_or_unsent_request_is_never_good_and_a_one_token_answer_has_no_tpot():
    slo = Slo.parse("ttft_ms=1000,tpot_ms=1")
    assert not slo.met_by(result(error="HTTPError: 500"))
    assert not slo.met_by(result(sent=False))
    one_token = result(ttft=10.0, tpot=0.0, tokens=1)
    assert one_token.tpot_ms is None and slo.met_by(one_token)


def test_goodput_counts_good_requests_per_second_of_the_run():
    slo = Slo.parse("ttft_ms=200")
    results = [result(100.0), result(150.0), result(250.0), result(error="timed out")]
    assert goodput(loaded(results, duration=2.0), slo) == 1.0
    assert goodput(loaded(results, duration=0.0), slo) is None
    assert goodput(loaded(results, duration=-1.0), slo) is None


@given(st.lists(st.tuples(st.floats(1, 5000), st.floats(0, 500)), max_size=30),
       st.floats(0.1, 100.0))
def test_goodput_never_exceeds_the_completion_rate_and_a_stricter_slo_never_raises_it(
        requests, duration):
    results = [result(ttft, tpot) for ttft, tpot in requests]
    run = loaded(results, duration)
    loose = goodput(run, Slo.parse("ttft_ms=3000,tpot_ms=300"))
    strict = goodput(run, Slo.parse("ttft_ms=1000,tpot_ms=100,e2e_ms=2000"))
    assert strict <= loose <= len(results) / duration + 1e-9


def test_p99_problems_name_each_missed_target():
    slo = Slo.parse("ttft_ms=200,tpot_ms=20,e2e_ms=1000")
    summary = {"p99_ttft_ms": 250.4, "p99_tpot_ms": 20.0, "p99_e2e_ms": 1500.0}
    assert slo.p99_problems(summary) == ["P99 ttft_ms 250 > 200", "P99 e2e_ms 1500 > 1000"]
    assert slo.p99_problems({"p99_ttft_ms": None}) == []


def test_parse_and_text_round_trip_and_the_default():
    assert Slo.parse(DEFAULT_SLO).targets == (("ttft_ms", 2000.0), ("tpot_ms", 200.0))
    slo = Slo.parse(" ttft_ms=500 , e2e_ms=9000.5")
    assert slo.targets == (("ttft_ms", 500.0), ("e2e_ms", 9000.5))
    assert slo.text() == "ttft_ms=500,e2e_ms=9000.5"


@pytest.mark.parametrize("text, message", [
    ("ttft=5", "'ttft=5' is not key=milliseconds with a key from ttft_ms, tpot_ms, e2e_ms"),
    ("ttft_ms", "'ttft_ms' is not key=milliseconds with a key from ttft_ms, tpot_ms, e2e_ms"),
    ("ttft_ms=-1", "ttft_ms='-1' is not a positive number of milliseconds"),
    ("ttft_ms=0", "ttft_ms='0' is not a positive number of milliseconds"),
    ("ttft_ms=soon", "ttft_ms='soon' is not a positive number of milliseconds"),
    ("ttft_ms=nan", "ttft_ms='nan' is not a positive number of milliseconds"),
    ("ttft_ms=1,ttft_ms=2", "a key is given twice"),
    ("ttft_ms=1=2", "ttft_ms='1=2' is not a positive number of milliseconds"),
])
def test_a_bad_slo_is_refused_in_one_line(text, message):
    with pytest.raises(ValueError) as refused:
        Slo.parse(text)
    assert str(refused.value) == message


def point(rate, good, missed=()):
    return SweepPoint(rate, {"rate": rate}, good, list(missed))


def test_the_sweep_headline_is_the_highest_rate_meeting_the_slo():
    sweep = Sweep(Slo.parse("ttft_ms=100"), [point(1, 1.0), point(2, 2.0), point(4, 3.5, ["x"])])
    assert sweep.saturation_rate == 2 and sweep.peak_goodput == 3.5
    assert Sweep(Slo.parse("ttft_ms=100"), [point(1, None, ["x"])]).saturation_rate == 0.0
    assert Sweep(Slo.parse("ttft_ms=100")).peak_goodput == 0.0
    assert sweep.curve()[2] == {"rate": 4, "goodput": 3.5, "meets_slo": False, "missed": ["x"]}
    assert sweep.stopped_because == "every rate was tried"


class ScriptedServer:
    """A `send` that answers at once with two tokens (no network, no sleeps), or fails at
    the rates in `fail_at`."""

    def __init__(self, fail_at=()):
        self.fail_at = set(fail_at)
        self.rate = None

    def send(self, request):
        if self.rate in self.fail_at:
            raise ConnectionError("server gone")
        for count in (1, 2):
            yield time.perf_counter(), {"meta_info": {"completion_tokens": count,
                                                      "prompt_tokens": 3}}


def sweep_over(rates, slo, per_rate, server):
    def requests_at(rate):
        server.rate = rate
        return [REQUEST] * per_rate

    lines = []
    sweep = sweep_rates(server.send, requests_at, rates, Slo.parse(slo),
                        spec_at=lambda rate: LoadSpec(rate, "burst"), progress=lines.append)
    return sweep, lines


@pytest.fixture
def goodputs(monkeypatch):
    """`goodputs(*values)`: the goodput of each rate in turn, as the sweep will see it."""
    from pytest_ascend.serving import goodput as module

    def script(*values):
        given = iter(values)
        monkeypatch.setattr(module, "goodput", lambda run, slo: next(given))

    return script


def test_the_sweep_stops_at_the_first_rate_whose_requests_fail():
    sweep, lines = sweep_over([8, 2, 4], "e2e_ms=1e9", 3, ScriptedServer(fail_at={4}))
    assert [p.rate for p in sweep.points] == [2, 4]  # lowest first, stops at 4
    assert sweep.stopped_because == "requests failed at 4/s" and sweep.saturation_rate == 2
    assert sweep.points[1].missed == ["3 failed and 0 not sent of 3"]
    assert len(lines) == 2 and lines[1].startswith("load 4 req/s: 0/3 done in ")
    assert lines[1].endswith("goodput 0.00 req/s (e2e_ms=1e+09): 3 failed and 0 not sent of 3")


def test_requests_not_sent_stop_the_sweep_too():
    def requests_at(rate):
        return [REQUEST] * 3

    sweep = sweep_rates(ScriptedServer().send, requests_at, [1, 2], Slo.parse("e2e_ms=1e9"),
                        spec_at=lambda rate: LoadSpec(rate, "constant", time_limit_s=0.5))
    assert sweep.stopped_because == "requests failed at 1/s"
    assert sweep.points[0].missed == ["0 failed and 2 not sent of 3"]


def test_the_sweep_tries_every_rate_while_the_slo_holds_and_goodput_grows(goodputs):
    goodputs(1.0, 2.0, 2.0)
    sweep, _ = sweep_over([1, 2, 3], "e2e_ms=1e9", 2, ScriptedServer())
    assert [p.rate for p in sweep.points] == [1, 2, 3]
    assert sweep.stopped_because == "every rate was tried" and sweep.saturation_rate == 3
    assert sweep.slo == Slo.parse("e2e_ms=1e9")


def test_the_sweep_stops_where_a_p99_misses_its_slo():
    strict, _ = sweep_over([1, 2], "e2e_ms=1e-9", 2, ScriptedServer())
    assert len(strict.points) == 1 and strict.stopped_because == "the SLO was missed at 1/s"
    assert strict.points[0].missed[0].startswith("P99 e2e_ms ")
    assert strict.points[0].goodput == 0 and strict.saturation_rate == 0


def test_the_sweep_stops_when_goodput_falls(goodputs):
    goodputs(4.0, 6.0, 5.0, 9.0)
    sweep, _ = sweep_over([1, 2, 3, 4], "e2e_ms=1e9", 1, ScriptedServer())
    assert [p.rate for p in sweep.points] == [1, 2, 3]
    assert sweep.stopped_because == "goodput fell at 3/s"
    assert sweep.saturation_rate == 3 and sweep.peak_goodput == 6.0


def test_a_missing_goodput_counts_as_none(goodputs):
    goodputs(None, 0.5, None)
    sweep, _ = sweep_over([1, 2, 3], "e2e_ms=1e9", 1, ScriptedServer())
    assert sweep.stopped_because == "goodput fell at 3/s" and sweep.peak_goodput == 0.5


def test_point_line_says_what_the_rate_did():
    summary = {"completed": 9, "requests": 10, "duration_s": 2.04, "median_ttft_ms": 101.4,
               "p99_ttft_ms": 250.6, "median_tpot_ms": 11.6, "p99_tpot_ms": None}
    slo = Slo.parse("ttft_ms=200")
    missed = ["P99 ttft_ms 251 > 200", "1 failed and 0 not sent of 10"]
    assert point_line(SweepPoint(8.0, summary, 4.5, missed), slo) == (
        "load 8 req/s: 9/10 done in 2.0 s, TTFT P50/P99 101/251 ms, TPOT P50/P99 12/- ms, "
        "goodput 4.50 req/s (ttft_ms=200): P99 ttft_ms 251 > 200; 1 failed and 0 not sent "
        "of 10")
    both = {**summary, "p99_tpot_ms": 12.4}
    line = point_line(SweepPoint(8.0, both, None, []), slo)
    assert "TPOT P50/P99 12/12 ms" in line
    assert line.endswith("goodput 0.00 req/s (ttft_ms=200): meets the SLO")


class Settings:
    sglang_rates = None
    sglang_requests = None
    sglang_lengths = Lengths(128, 32)
    sglang_slo = Slo.parse("ttft_ms=500")
    sglang_arrival = "poisson"
    sglang_max_concurrency = 4


def test_sweep_config_defaults_and_its_time_limits():
    smoke = SweepConfig.of(Settings, smoke=True)
    assert (smoke.rates, smoke.requests) == (SMOKE_RATES, SMOKE_REQUESTS)
    full = SweepConfig.of(Settings, smoke=False)
    assert (full.rates, full.requests) == (FULL_RATES, FULL_REQUESTS)
    assert (full.lengths, full.slo, full.arrival, full.max_concurrency) == (
        Settings.sglang_lengths, Settings.sglang_slo, "poisson", 4)
    chosen = type("Chosen", (Settings,), {"sglang_rates": [2.0, 1.0], "sglang_requests": 7})
    config = SweepConfig.of(chosen, smoke=True)
    assert (config.rates, config.requests) == ((2.0, 1.0), 7)
    spec = full.spec(4.0)
    assert spec == LoadSpec(4.0, "poisson", 4, time_limit_s=2 * 100 / 4 + 60,
                            request_timeout_s=120.0)
    assert math.isclose(smoke.spec(8.0).time_limit_s, 2 * 24 / 8 + 60)
    patient = SweepConfig((1.0,), 10, Settings.sglang_lengths, Settings.sglang_slo, "burst",
                          None, request_timeout_s=600.0)
    assert patient.spec(1.0).request_timeout_s == 600.0
