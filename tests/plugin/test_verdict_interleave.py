"""The interleaved-ratio verdict at its edges: a bound fails only when the whole interval is
past it, never on the median alone, and general rules hold for any rounds (hypothesis)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_ascend.measure.interleave import (
    RoundRatios,
    _binomial_half_cdf,
    alternate,
    bound_problem,
    median_interval,
    round_ratios,
)

ratios = st.lists(st.floats(0.01, 100.0), min_size=1, max_size=40)


def test_alternate_returns_each_configurations_results_in_round_order():
    counter = {"a": 0, "b": 0}

    def call(name):
        counter[name] += 1
        return f"{name}{counter[name]}"

    results = alternate({"a": lambda: call("a"), "b": lambda: call("b")}, rounds=3)
    assert results == {"a": ["a1", "a2", "a3"], "b": ["b1", "b2", "b3"]}
    assert alternate({"only": lambda: 1}, rounds=1) == {"only": [1]}


@pytest.mark.parametrize("rounds", [0, -1])
def test_alternate_refuses_no_rounds(rounds):
    with pytest.raises(ValueError, match=f"rounds must be >= 1, got {rounds}"):
        alternate({"a": lambda: 1}, rounds=rounds)


def test_binomial_half_cdf():
    assert _binomial_half_cdf(1, 0) == 0.5
    assert _binomial_half_cdf(3, 1) == 0.5
    assert _binomial_half_cdf(4, 0) == 1 / 16
    assert _binomial_half_cdf(4, 4) == 1.0


@pytest.mark.parametrize("n, k", [(1, 1), (2, 1), (5, 1), (8, 1), (9, 2), (12, 3), (17, 5),
                                  (30, 10)])
def test_interval_order_statistics_at_95_percent(n, k):
    """k from the binomial table (e.g. Conover, Practical Nonparametric Statistics): n = 9
    is the first size whose interval drops the extremes."""
    values = [float(v) for v in range(n, 0, -1)]  # unsorted on purpose
    assert median_interval(values) == (float(k), float(n + 1 - k))


def test_a_lower_confidence_gives_a_narrower_interval():
    values = [float(v) for v in range(1, 12)]
    assert median_interval(values, confidence=0.95) == (2.0, 10.0)
    assert median_interval(values, confidence=0.5) == (4.0, 8.0)


@pytest.mark.parametrize("n, expected", [(3, (2.0, 2.0)), (10, (5.0, 6.0)), (11, (6.0, 6.0))])
def test_a_zero_confidence_interval_is_the_median_itself(n, expected):
    """The order statistics close in on the middle one (two for an even count), where
    P(Bin(n, 1/2) <= k) reaches exactly 1/2 for n = 3."""
    assert median_interval([float(v) for v in range(1, n + 1)], confidence=0.0) == expected


def test_no_values_has_no_interval():
    with pytest.raises(ValueError, match="^no values$"):
        median_interval([])
    for numerators, denominators in (([], []), ([1.0], [1.0, 2.0])):
        with pytest.raises(ValueError, match="^ratios need the same non-zero number of rounds "
                                             "on both sides$"):
            round_ratios(numerators, denominators)


def test_round_ratios_divide_round_by_round():
    assert round_ratios([2.0, 9.0, 1.0], [1.0, 3.0, 4.0]).values == (2.0, 3.0, 0.25)


def test_a_planted_slowdown_fails_only_when_its_whole_interval_is_past_the_bound():
    """A candidate 2x slower in every one of 7 rounds fails a 'not slower than 1.5x' bound;
    the same median with one round under the bound is inconclusive."""
    slowed = RoundRatios((2.0, 2.1, 1.9, 2.05, 1.95, 2.2, 1.8))
    assert bound_problem(slowed, "candidate over baseline time", at_most=1.5) == (
        "candidate over baseline time: 2x (interval 1.8-2.2x over 7 rounds), above 1.5x")
    one_round_under = RoundRatios((2.0, 2.1, 1.9, 2.05, 1.95, 2.2, 1.4))
    assert bound_problem(one_round_under, "candidate over baseline time", at_most=1.5) is None


def test_the_bound_itself_is_not_past_the_bound():
    edge = RoundRatios((1.0, 1.2, 1.1))
    assert not edge.clearly_above(1.0) and edge.clearly_above(0.99)
    assert not edge.clearly_below(1.2) and edge.clearly_below(1.21)
    assert bound_problem(edge, "x", at_least=1.2, at_most=1.0) is None


def test_both_bounds_are_checked_and_named():
    low = RoundRatios((0.5, 0.6, 0.55))
    high = RoundRatios((5.0, 6.0, 5.5))
    assert bound_problem(low, "scaling", at_least=1.0, at_most=8.0) == (
        "scaling: 0.55x (interval 0.5-0.6x over 3 rounds), below 1x")
    assert bound_problem(high, "scaling", at_least=1.0, at_most=4.0) == (
        "scaling: 5.5x (interval 5-6x over 3 rounds), above 4x")
    assert bound_problem(high, "scaling") is None


def test_describe_and_the_confidence_it_uses():
    wide = RoundRatios(tuple(float(v) for v in range(1, 12)), confidence=0.5)
    assert wide.interval == (4.0, 8.0)
    assert wide.describe() == "6x (interval 4-8x over 11 rounds)"


@given(ratios)
def test_a_ratio_never_says_faster_when_every_round_was_slower(values):
    """Speedups all under 1 (each round slower): never clearly above 1, always clearly
    below it, and the at-least-1 bound fails."""
    slower = RoundRatios(tuple(min(v, 0.99) for v in values))
    assert not slower.clearly_above(1.0) and slower.clearly_below(1.0)
    assert bound_problem(slower, "speedup", at_least=1.0) is not None


@given(ratios, st.floats(0.01, 100.0))
def test_an_interval_is_never_both_below_and_above_and_holds_the_median(values, bound):
    r = RoundRatios(tuple(values))
    low, high = r.interval
    assert min(values) <= low <= r.median <= high <= max(values)
    assert not (r.clearly_below(bound) and r.clearly_above(bound))


@given(ratios, st.randoms())
def test_the_verdict_does_not_depend_on_the_order_of_rounds(values, rng):
    shuffled = list(values)
    rng.shuffle(shuffled)
    assert RoundRatios(tuple(values)).interval == RoundRatios(tuple(shuffled)).interval


@given(st.lists(st.floats(0.01, 100.0), min_size=1, max_size=40), st.floats(0.01, 100.0))
def test_load_shared_by_both_sides_of_a_round_leaves_the_ratio_alone(base, load):
    """A round slowed by `load` on both sides has the same ratio."""
    candidate = [2 * b for b in base]
    plain = round_ratios(candidate, base)
    loaded = round_ratios([c * load for c in candidate], [b * load for b in base])
    assert loaded.median == pytest.approx(plain.median)
