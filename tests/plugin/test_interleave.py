"""The verdict logic of every ratio the suite asserts, on synthetic measurements: a real
regression fails, load that hits both sides of a round alike does not, and noise alone makes
a verdict inconclusive rather than red."""

import math
import random

import pytest

from pytest_ascend.measure.interleave import (
    RoundRatios,
    alternate,
    bound_problem,
    median_interval,
    round_ratios,
)


def test_alternate_rotates_the_order_every_round():
    calls = []
    alternate({name: (lambda name=name: calls.append(name)) for name in "ABC"}, rounds=3)
    assert calls == list("ABC" "BCA" "CAB")


@pytest.mark.parametrize("n", range(1, 30))
def test_the_interval_is_the_binomial_order_statistic(n):
    """k is the largest with 1 - 2 P(Bin(n, 1/2) <= k - 1) >= 95%, computed independently."""
    values = [float(v) for v in range(n)]
    coverage = [1 - 2 * sum(math.comb(n, i) for i in range(k)) / 2**n for k in range(1, n + 1)]
    k = max([1] + [k for k in range(1, (n + 1) // 2 + 1) if coverage[k - 1] >= 0.95])
    assert median_interval(values) == (values[k - 1], values[n - k])


def machine_load(rounds, seed):
    """Per-round slow-down of a shared 2-core machine: 1x to 10x, as measured under hogs."""
    rng = random.Random(seed)
    return [rng.uniform(1, 10) for _ in range(rounds)]


@pytest.mark.parametrize("seed", range(20))
def test_load_shared_by_a_round_cancels_in_its_ratio(seed):
    """Batch 8 at 3x batch 1, measured under load that changes every round: interleaved, the
    verdict is right whatever the load; the same figures taken in two separate phases (the
    old way) can swing either way."""
    load = machine_load(14, seed)
    noise = random.Random(seed + 100)
    batch1 = [100 / load[i] * noise.uniform(0.95, 1.05) for i in range(7)]  # tokens/s
    batch8 = [300 / load[i] * noise.uniform(0.95, 1.05) for i in range(7)]
    scaling = round_ratios(batch8, batch1)
    assert scaling.clearly_above(1) and not scaling.clearly_above(8)
    assert bound_problem(scaling, "batch 8 over batch 1", at_least=1.0, at_most=8 * 1.25) is None


def test_a_real_regression_fails():
    """Batching that stopped helping (0.6x batch 1), measured under the same load."""
    load = machine_load(7, 1)
    batch1 = [100 / x for x in load]
    batch8 = [60 / x * f for x, f in zip(load, (1.0, 1.04, 0.97, 1.02, 0.99, 1.03, 0.98))]
    problem = bound_problem(round_ratios(batch8, batch1), "batch 8 over batch 1", at_least=1.0)
    assert problem is not None and problem.startswith("batch 8 over batch 1: 0.6")


def test_noise_alone_is_inconclusive_not_red():
    """Medians past the bound on either side, intervals across it: noise, not a verdict."""
    below = RoundRatios((0.6, 1.4, 0.9, 1.1, 0.8, 0.85, 0.95))
    above = RoundRatios((0.6, 1.4, 1.1, 0.9, 1.2, 1.15, 1.05))
    assert below.median == 0.9 and above.median == 1.1
    for noisy in (below, above):
        assert not noisy.clearly_below(1) and not noisy.clearly_above(1)
        assert bound_problem(noisy, "speedup", at_least=1.0) is None
        assert bound_problem(noisy, "overhead", at_most=1.0) is None


def test_overhead_bound_fails_only_when_clearly_above():
    assert bound_problem(RoundRatios((1.10, 1.12, 1.09, 1.11, 1.13)), "harness", at_most=1.03)
    assert bound_problem(RoundRatios((1.10, 0.98, 1.01, 1.00, 0.99)), "harness",
                         at_most=1.03) is None


def test_report_carries_median_interval_and_rounds():
    report = RoundRatios((2.0, 1.0, 3.0)).report("scaling_vs_batch1")
    assert report == {"scaling_vs_batch1": 2.0, "scaling_vs_batch1_low": 1.0,
                      "scaling_vs_batch1_high": 3.0, "scaling_vs_batch1_rounds": [2.0, 1.0, 3.0]}


def test_mismatched_rounds_are_refused():
    with pytest.raises(ValueError, match="same non-zero number of rounds"):
        round_ratios([1.0, 2.0], [1.0])
