"""The batch-vs-single near-tie rule at its margin: both runs' margins are within the
tolerance or the divergence is a failure; the suite's one tolerance table decides it."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from pytest_ascend.model.compare import GreedyComparison, compare_greedy
from pytest_ascend.numerics.tolerance import (
    CALIBRATION_LAYERS,
    DLOGPROB_BOUND,
    depth_factor,
    dlogprob_bound,
    tie_margin,
)


def flip(gap_a, gap_b, tolerance):
    """Step 0 agrees; at step 1 A picks token 1 over token 2 by `gap_a`, B token 2 over 1 by
    `gap_b` (log-softmax differences equal logit differences)."""
    same = [0.0, 5.0, 0.0]
    a = torch.tensor([same, [0.0, gap_a, 0.0]], dtype=torch.float64)
    b = torch.tensor([same, [0.0, 0.0, gap_b]], dtype=torch.float64)
    return compare_greedy([1, 1, 7], a, [1, 2, 9], b, tolerance)


@pytest.mark.parametrize("gap_a, gap_b, close", [
    (0.25, 0.25, True), (0.125, 0.0, True), (0.26, 0.1, False), (0.1, 0.26, False)])
def test_a_divergence_is_accepted_only_when_both_margins_are_within_the_tolerance(
        gap_a, gap_b, close):
    verdict = flip(gap_a, gap_b, 0.25)
    assert not verdict.identical and verdict.first_divergence == 1
    assert verdict.steps_compared == 3
    assert verdict.margin_a == pytest.approx(gap_a, abs=1e-12)
    assert verdict.margin_b == pytest.approx(gap_b, abs=1e-12)
    assert verdict.close is close


def test_the_description_of_each_outcome():
    assert flip(0.1, 0.2, 0.25).describe() == (
        "diverged at token 1 of 3: margins 0.1 / 0.2 vs tolerance 0.25 (a near-tie, accepted)")
    assert flip(1.0, 0.2, 0.25).describe() == (
        "diverged at token 1 of 3: margins 1 / 0.2 vs tolerance 0.25 (NOT a near-tie)")
    same = torch.zeros(2, 3)
    assert compare_greedy([1, 2], same, [1, 2], same, 0.1).describe() == \
        "identical over 2 tokens"


def test_a_sequence_that_stops_early_is_a_divergence_at_its_end():
    logits = torch.zeros(3, 4)
    verdict = compare_greedy([1, 2, 3], logits, [1, 2], logits[:2], 100.0)
    assert (verdict.identical, verdict.steps_compared, verdict.first_divergence) == (False, 2, 2)
    assert math.isinf(verdict.margin_b) and not verdict.close
    assert GreedyComparison(True, 0, None, None, None, 0.0).close


@given(st.floats(0.0, 10.0), st.floats(0.0, 10.0), st.floats(0.0, 10.0))
def test_close_is_the_near_tie_rule_in_both_runs(gap_a, gap_b, tolerance):
    verdict = flip(gap_a, gap_b, tolerance)
    assert verdict.close == (verdict.margin_a <= tolerance and verdict.margin_b <= tolerance)


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_the_tie_margin_is_the_one_tolerance_grown_with_depth(dtype):
    assert tie_margin(dtype, layers=CALIBRATION_LAYERS) == DLOGPROB_BOUND[dtype]
    assert tie_margin(dtype, layers=2) == DLOGPROB_BOUND[dtype]
    assert tie_margin(dtype, layers=48) == pytest.approx(DLOGPROB_BOUND[dtype] * math.sqrt(12))
    assert tie_margin(dtype, layers=16, slack=2.0) == pytest.approx(4 * DLOGPROB_BOUND[dtype])
    assert tie_margin(dtype, "float32", layers=4) == dlogprob_bound("float32", dtype, layers=4)


def test_the_tolerance_refuses_what_it_cannot_judge():
    with pytest.raises(ValueError, match="^no tolerance for dtype 'int8'; known: float32, "
                                         "float16, bfloat16$"):
        tie_margin("int8", layers=4)
    with pytest.raises(ValueError, match="^name at least one dtype$"):
        dlogprob_bound(layers=4)
    with pytest.raises(ValueError, match="^a model has at least one layer, got 0$"):
        depth_factor(0)
    assert depth_factor(1) == 1.0 and depth_factor(CALIBRATION_LAYERS * 9) == 3.0


def test_identical_runs_have_no_margins_and_a_divergence_is_not_identical():
    same = torch.zeros(2, 3)
    identical = compare_greedy([1, 2], same, [1, 2], same, 0.1)
    assert identical.identical is True and identical.first_divergence is None
    assert identical.margin_a is None and identical.margin_b is None
    assert flip(0.1, 0.1, 0.25).identical is False
