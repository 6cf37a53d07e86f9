"""The golden comparison's verdicts on hand-made distributions: the KL and |Δ logprob|
figures against independent arithmetic, the near-tie rule at its margin in *both* the golden
and the run, and the bounds per dtype and depth."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from pytest_ascend.numerics.divergence import (
    PERPLEXITY_PER_DLOGPROB,
    Bounds,
    bounds_for,
    compare_prompt,
    full_kl,
    shared_topk_delta,
    topk_kl,
)
from pytest_ascend.numerics.tolerance import DLOGPROB_BOUND


def logprobs(*rows):
    """[positions, vocab] float64 log-probabilities of the given logits."""
    return torch.log_softmax(torch.tensor(rows, dtype=torch.float64), dim=1)


def top(lp, k):
    values = lp.topk(k, dim=1)
    return values.indices, values.values


def kl_by_hand(p, q):
    return sum(pi * (math.log(pi) - math.log(qi)) for pi, qi in zip(p, q) if pi > 0)


def test_topk_kl_is_kl_over_the_golden_top_k_and_one_other_bin():
    golden = logprobs([3.0, 2.0, 1.0, 0.0, -1.0])
    run = logprobs([2.5, 2.2, 1.4, -0.5, 0.0])
    ids, values = top(golden, 2)  # tokens 0 and 1
    p, q = golden[0].exp().tolist(), run[0].exp().tolist()
    expected = kl_by_hand([p[0], p[1], sum(p[2:])], [q[0], q[1], sum(q[2:])])
    assert float(topk_kl(ids, values, run)[0]) == pytest.approx(expected, rel=1e-12)
    assert float(full_kl(golden, run)[0]) == pytest.approx(kl_by_hand(p, q), rel=1e-12)
    assert float(topk_kl(ids, values, golden)[0]) == pytest.approx(0.0, abs=1e-15)


def test_a_golden_whose_top_k_holds_all_the_mass_has_an_empty_other_bin():
    golden = logprobs([5.0, 4.0, -1e4])
    run = logprobs([4.0, 5.0, 1.0])
    ids, values = top(golden, 2)
    p, q = golden[0].exp().tolist(), run[0].exp().tolist()
    expected = kl_by_hand([p[0], p[1]], [q[0], q[1]])
    assert float(topk_kl(ids, values, run)[0]) == pytest.approx(expected, rel=1e-9)


def test_a_run_with_no_mass_outside_the_golden_top_k_is_not_infinitely_far():
    golden = logprobs([2.0, 1.0, 0.0])
    run = logprobs([2.0, 1.0, -1e4])
    ids, values = top(golden, 2)
    kl = float(topk_kl(ids, values, run)[0])
    assert math.isfinite(kl) and kl > 1.0  # the golden's other bin has mass, the run's none


@given(st.lists(st.floats(-5, 5), min_size=6, max_size=6),
       st.lists(st.floats(-5, 5), min_size=6, max_size=6))
def test_top_k_kl_never_exceeds_the_full_kl_and_is_never_negative(golden_logits, run_logits):
    """The data-processing inequality: coarse-graining never adds divergence."""
    golden, run = logprobs(golden_logits), logprobs(run_logits)
    ids, values = top(golden, 3)
    coarse, full = float(topk_kl(ids, values, run)[0]), float(full_kl(golden, run)[0])
    assert 0.0 <= coarse <= full + 1e-9


def test_shared_top_k_delta_takes_the_largest_over_tokens_in_both_top_ks():
    golden = logprobs([3.0, 2.0, 1.0, 0.0], [3.0, 2.0, 1.0, 0.0])
    run = logprobs([3.0, 2.5, 1.0, 0.0], [0.0, 1.0, 2.0, 3.0])
    ids, values = top(golden, 2)
    delta = shared_topk_delta(ids, values, run)
    expected = (golden[0, :2] - run[0, :2]).abs().max()
    assert float(delta[0]) == pytest.approx(float(expected))
    # position 1: the run's top-2 (tokens 3, 2) shares nothing with the golden's (0, 1)
    assert float(delta[1]) == 0.0


def test_shared_top_k_delta_matches_tokens_whatever_their_rank():
    golden = logprobs([3.0, 2.0, 0.0, -1.0])
    run = logprobs([2.0, 3.5, 0.0, -1.0])  # the same two tokens, in the other order
    ids, values = top(golden, 2)
    expected = (golden[0, :2] - run[0, :2]).abs().max()
    assert float(shared_topk_delta(ids, values, run)[0]) == pytest.approx(float(expected))


def test_shared_top_k_delta_skips_a_token_only_the_golden_ranks():
    golden = logprobs([3.0, 2.9, 0.0, -5.0])
    run = logprobs([3.0, -5.0, 2.9, 0.0])  # token 1 fell out of the run's top-2
    ids, values = top(golden, 2)
    assert float(shared_topk_delta(ids, values, run)[0]) == pytest.approx(
        abs(float(golden[0, 0] - run[0, 0])))


@pytest.mark.parametrize("dtype, golden_dtype, layers, slack, dlogprob", [
    ("float32", "float32", 4, 1.0, 1e-3),
    ("float16", "float32", 4, 1.0, 5e-2),
    ("float32", "float16", 4, 1.0, 5e-2),  # the looser dtype decides
    ("bfloat16", "float16", 4, 1.0, 4e-1),
    ("float16", "float16", 16, 1.0, 1e-1),  # sqrt(16 / 4) = 2
    ("float16", "float16", 1, 1.0, 5e-2),  # shallower keeps the calibration bound
    ("float16", "float16", 4, 3.0, 1.5e-1),
    ("bfloat16", "bfloat16", 48, 1.0, 4e-1 * math.sqrt(12)),
])
def test_bounds_per_dtype_depth_and_slack(dtype, golden_dtype, layers, slack, dlogprob):
    bounds = bounds_for(dtype, golden_dtype, layers, slack)
    assert bounds.dlogprob == pytest.approx(dlogprob)
    assert bounds.tie_margin == bounds.dlogprob
    assert bounds.kl == pytest.approx(dlogprob ** 2 / 2)
    assert bounds.perplexity == pytest.approx(dlogprob * PERPLEXITY_PER_DLOGPROB)
    assert DLOGPROB_BOUND["float32"] < DLOGPROB_BOUND["float16"] < DLOGPROB_BOUND["bfloat16"]


def test_bounds_without_slack_are_the_calibrated_ones():
    assert bounds_for("float16", "float16", 4).dlogprob == DLOGPROB_BOUND["float16"]


def test_bounds_describe_themselves():
    assert Bounds(0.05, 0.00125, 0.05, 0.0025).describe() == (
        "|Δ logprob| <= 0.05, KL <= 0.00125, near-tie margin 0.05, perplexity within 0.25%")


# Near-ties. Position 0's golden ranks token 0 over token 1 by `golden_gap`; the run picks
# token 1 over token 0 by `run_gap`. Both must be within the margin for a near-tie.
MARGIN = 0.25


def one_flip(golden_gap, run_gap, vocab_tail=(-3.0, -4.0)):
    golden = logprobs([0.0, -golden_gap, *vocab_tail])
    run = logprobs([-run_gap, 0.0, *vocab_tail])
    ids, values = top(golden, 3)
    return compare_prompt("p", [0], ids, values, {}, [1], run, MARGIN)


@pytest.mark.parametrize("golden_gap, run_gap, near", [
    (0.25, 0.25, True),  # both exactly at the margin
    (0.1, 0.1, True),
    (0.26, 0.1, False),  # the golden was decided
    (0.1, 0.26, False),  # the run was decided: a run margin is part of the rule
    (0.26, 0.26, False),
])
def test_near_tie_needs_both_margins_within_the_tie_margin(golden_gap, run_gap, near):
    result = one_flip(golden_gap, run_gap)
    first = result.first_divergence
    assert (first.position, first.golden_token, first.run_token) == (0, 0, 1)
    assert first.golden_margin == pytest.approx(golden_gap)
    assert first.run_margin == pytest.approx(run_gap)
    assert first.near_tie is near
    assert result.unexplained == (() if near else (first,))
    assert result.agreeing == 0 and result.positions == 1


def test_a_run_token_outside_the_golden_top_k_is_never_a_near_tie():
    golden = logprobs([0.0, -0.01, -0.02, -0.03])
    run = logprobs([-0.01, -5.0, -5.0, 0.0])  # picks token 3, outside the golden's top-3
    ids, values = top(golden, 3)
    result = compare_prompt("p", [0], ids, values, {}, [3], run, tie_margin=10.0)
    first = result.first_divergence
    assert not first.near_tie
    assert first.golden_margin == pytest.approx(float(golden[0, 0] - golden[0, 2]))


def decode(token):
    return f"<{token}>"


def test_compare_prompt_counts_agreement_and_keeps_full_vocabulary_kl():
    golden = logprobs([2.0, 0.0, -1.0], [0.0, 2.0, -1.0], [0.0, -1.0, 2.0])
    run = logprobs([2.0, 0.1, -1.0], [0.0, 1.9, -1.0], [0.0, -1.0, 2.1])
    ids, values = top(golden, 2)
    result = compare_prompt("p", [0, 1, 2], ids, values, {1: golden[1]}, [0, 1, 2], run, 0.1)
    assert result.agreeing == 3 and result.first_divergence is None and not result.unexplained
    assert list(result.full_kl) == [1]
    assert result.full_kl[1] == pytest.approx(float(full_kl(golden[1:2], run[1:2])[0]))
    assert torch.equal(result.kl, topk_kl(ids, values, run))
    assert torch.equal(result.dlogprob, shared_topk_delta(ids, values, run))
    assert result.problems(Bounds(1.0, 1.0, 0.1, 0.1), decode) == []


def test_problems_name_the_position_tokens_and_margins_of_a_decided_flip():
    result = one_flip(2.0, 1.5)
    (line, *rest) = result.problems(Bounds(10.0, 10.0, MARGIN, 1.0), decode)
    assert not rest
    assert line == ("p: greedy token differs at position 0 of 1: golden '<0>' (id 0), run "
                    "'<1>' (id 1); golden margin 2, run margin 1.5, not a near-tie (<= 0.25); "
                    "1 such position(s)")


def test_problems_point_to_an_earlier_near_tie():
    golden = logprobs([0.0, -0.1, -3.0], [0.0, -2.0, -3.0])
    run = logprobs([-0.1, 0.0, -3.0], [-2.0, 0.0, -3.0])
    ids, values = top(golden, 3)
    result = compare_prompt("p", [0, 0], ids, values, {}, [1, 1], run, MARGIN)
    assert result.first_divergence.position == 0 and result.unexplained[0].position == 1
    (line,) = result.problems(Bounds(10.0, 10.0, MARGIN, 1.0), decode)
    assert line.endswith("1 such position(s); first divergence at position 0 (a near-tie: "
                         "'<0>' vs '<1>')")


def test_problems_count_the_positions_over_each_bound():
    golden = logprobs([2.0, 0.0, -1.0], [2.0, 0.0, -1.0], [2.0, 0.0, -1.0])
    run = logprobs([2.0, 0.0, -1.0], [2.0, 1.0, -1.0], [2.0, 1.5, -1.0])
    ids, values = top(golden, 2)
    result = compare_prompt("p", [0, 0, 0], ids, values, {}, [0, 0, 0], run, MARGIN)
    kl, dlp = result.kl, result.dlogprob
    bound = float(kl[1]) * 0.999  # positions 1 and 2 over it, the worst at 2
    lines = result.problems(Bounds(float(dlp[2]) * 2, bound, MARGIN, 1.0), decode)
    assert lines == [f"p: KL {float(kl[2]):.3g} at position 2 > bound {bound:g} (2 of 3 "
                     f"positions over it; first at 1)"]
    lines = result.problems(Bounds(float(dlp[2]), 1.0, MARGIN, 1.0), decode)
    assert lines == []  # at the bound is within it
    lines = result.problems(Bounds(float(dlp[1]), 1.0, MARGIN, 1.0), decode)
    assert lines == [f"p: max |Δ logprob| {float(dlp[2]):.3g} at position 2 > bound "
                     f"{float(dlp[1]):g} (1 of 3 positions over it; first at 2)"]


def test_every_figure_is_per_position():
    golden = logprobs([3.0, 2.0, 1.0, 0.0], [0.0, 1.0, 2.0, 3.0], [1.0, 1.0, 1.0, 1.0])
    run = logprobs([2.0, 3.0, 1.0, 0.0], [0.0, 1.0, 2.0, 3.0], [3.0, 1.0, 1.0, 0.0])
    ids, values = top(golden, 2)
    for figure in (lambda i, v, r: topk_kl(i, v, r), lambda i, v, r: shared_topk_delta(i, v, r)):
        whole = figure(ids, values, run)
        alone = [float(figure(ids[p:p + 1], values[p:p + 1], run[p:p + 1])[0]) for p in range(3)]
        assert whole.shape == (3,) and whole.tolist() == pytest.approx(alone)
    assert full_kl(golden, run).tolist() == pytest.approx(
        [float(full_kl(golden[p:p + 1], run[p:p + 1])[0]) for p in range(3)])
