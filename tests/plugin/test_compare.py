"""The batch-vs-single rule, checked against margins computed by hand."""

import math

import pytest
import torch

from pytest_ascend.model.compare import compare_greedy


def logits_for(*rows):
    return torch.tensor(rows, dtype=torch.float32)


def test_identical_sequences():
    verdict = compare_greedy([1, 2], logits_for([0, 5, 1], [0, 1, 5]), [1, 2],
                             logits_for([0, 5, 1], [0, 1, 5]), 1e-3)
    assert verdict.identical and verdict.close and verdict.first_divergence is None


def test_divergence_at_a_near_tie_is_accepted_with_exact_margins():
    a = logits_for([0.0, 3.0, 3.01])  # A picks 2, by 0.01
    b = logits_for([0.0, 3.02, 3.0])  # B picks 1, by 0.02
    verdict = compare_greedy([2], a, [1], b, tolerance=0.05)
    assert verdict.first_divergence == 0
    # log-softmax differences equal logit differences
    assert verdict.margin_a == pytest.approx(0.01, abs=1e-6)
    assert verdict.margin_b == pytest.approx(0.02, abs=1e-6)
    assert verdict.close


def test_divergence_with_a_clear_winner_is_rejected():
    a = logits_for([0.0, 1.0, 4.0])
    b = logits_for([0.0, 4.0, 1.0])
    verdict = compare_greedy([2], a, [1], b, tolerance=0.05)
    assert not verdict.close
    assert verdict.margin_a == pytest.approx(3.0, abs=1e-6)
    assert "NOT a near-tie" in verdict.describe()


def test_length_mismatch_is_never_close():
    verdict = compare_greedy([1, 2], logits_for([0, 5], [5, 0]), [1], logits_for([0, 5]), 1.0)
    assert not verdict.close and math.isinf(verdict.margin_a)
