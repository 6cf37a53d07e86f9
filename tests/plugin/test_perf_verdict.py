"""A performance verdict end to end, in a smoke run: a real interleaved measurement
(measure.interleave) of two callables, one with a planted slowdown, judged through the
plugin's `ascend_perf_verdict` fixture. The planted side must turn the verdict red and the
clean side must stay green, on a loaded 2-core machine too.

Sizing: each call sleeps 50 ms, the planted one 400 ms more (9x). A sleep never returns
early, and load only adds to it, so the planted ratio stays above the 1.5x bound unless a
baseline call overshoots by 250 ms; with 9 rounds the interval is the 2nd smallest to the
2nd largest ratio, so one such round cannot flip the verdict. The clean pair would need the
candidate to overshoot its baseline by 25 ms in 8 rounds of 9 (the order rotates each round)
to go red."""

VERDICT_TEST = """
import time

import pytest

from pytest_ascend.measure.interleave import alternate, bound_problem, round_ratios

WORK_S = 0.05


def timed(extra_s):
    def call():
        start = time.perf_counter()
        time.sleep(WORK_S + extra_s)
        return time.perf_counter() - start
    return call


@pytest.mark.parametrize("planted_s", [0.0, 0.4], ids=["clean", "planted"])
def test_candidate_is_not_slower_than_baseline(ascend_perf_verdict, ascend_progress, planted_s):
    times = alternate({"baseline": timed(0.0), "candidate": timed(planted_s)}, rounds=9)
    ratio = round_ratios(times["candidate"], times["baseline"])
    ascend_progress(f"candidate over baseline: {ratio.describe()}")
    ascend_perf_verdict(bound_problem(ratio, "candidate over baseline time", at_most=1.5))
"""


def test_a_planted_slowdown_turns_the_verdict_red_in_a_smoke_run(pytester):
    pytester.makepyfile(test_verdict=VERDICT_TEST)
    asserted = pytester.runpytest("--ascend-assert-perf", "-p", "no:randomly")
    asserted.assert_outcomes(passed=1, failed=1)
    asserted.stdout.fnmatch_lines([
        "*candidate over baseline time: *x (interval *x over 9 rounds), above 1.5x*",
        "FAILED test_verdict.py::test_candidate_is_not_slower_than_baseline?planted?*"])
    assert "[clean] - candidate over baseline" not in asserted.stdout.str()


def test_without_assert_perf_the_red_verdict_is_reported_not_hidden(pytester):
    pytester.makepyfile(test_verdict=VERDICT_TEST)
    smoke = pytester.runpytest("-p", "no:randomly")
    smoke.assert_outcomes(passed=2)
    reported = [line for line in smoke.stdout.lines if "reported, not asserted" in line]
    assert len(reported) == 1 and "above 1.5x" in reported[0], smoke.stdout.str()[-2000:]
