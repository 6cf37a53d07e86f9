"""The model's numerics against a golden recorded on a trusted stack, and its perplexity on
the shipped text: what catches a kernel that is faster and subtly wrong, which every check
of the stack against itself would pass."""

import math

import pytest

from pytest_ascend.numerics.check import compare_with_golden
from pytest_ascend.numerics.divergence import bounds_for
from pytest_ascend.numerics.perplexity import text_perplexity

pytestmark = pytest.mark.npu


def golden_bounds(model, plan, golden):
    return bounds_for(plan.dtype, golden.dtype, model.config.num_hidden_layers,
                      plan.settings.golden_slack)


def test_matches_golden(model, tokenizer, ascend_golden, ascend_plan, benchmark,
                        ascend_progress):
    """Greedy tokens equal to the golden's, or differing only at its near-ties; KL and
    |Δ logprob| at every position within the dtype's bounds (docs/metrics.md)."""
    bounds = golden_bounds(model, ascend_plan, ascend_golden)
    report = benchmark.pedantic(compare_with_golden, args=(model, ascend_golden, bounds),
                                rounds=1, iterations=1)
    metrics = report.metrics()
    benchmark.extra_info.update(metrics)
    print("\n".join(report.lines()))
    ascend_progress(
        f"golden ({ascend_golden.dtype}) vs this run ({ascend_plan.dtype}): agreement "
        f"{metrics['token_agreement']:.4f} over {metrics['golden_positions']} positions, KL "
        f"mean {metrics['golden_kl_mean']:.3g} max {metrics['golden_kl_max']:.3g}, max "
        f"|Δ logprob| {metrics['golden_dlogprob_max']:.3g} ({bounds.describe()})")
    problems = report.problems(lambda token: tokenizer.decode([token]))
    assert not problems, (
        f"this run ({ascend_plan.dtype}) is not within the bounds of the {ascend_golden.describe()}"
        f" ({bounds.describe()}):\n" + "\n".join(problems))


def test_perplexity_on_shipped_text(model, tokenizer, ascend_plan, benchmark, ascend_progress):
    """Perplexity on the shipped zh/en/code text, finite, and with a golden within the
    dtype's bound of the golden's."""
    result = benchmark.pedantic(text_perplexity, args=(model, tokenizer), rounds=1,
                                iterations=1)
    benchmark.extra_info.update(result.metrics())
    assert math.isfinite(result.perplexity), (
        f"perplexity is {result.perplexity} in {ascend_plan.dtype}: the logits overflowed; "
        f"Qwen2-family models can in float16, rerun with --ascend-dtype bfloat16")
    line = (f"perplexity {result.perplexity:.6g} over {result.tokens} tokens (window "
            f"{result.window}, stride {result.stride}, {ascend_plan.dtype})")
    golden = ascend_plan.golden
    recorded = golden.perplexity if golden is not None else None
    if recorded is None:
        ascend_progress(line)
        return
    if recorded["perplexity_text_sha256"] != result.text_sha256 or \
            recorded["perplexity_window"] != result.window:
        ascend_progress(f"{line}; not compared with the golden, which scored another text or "
                        f"window: record the golden again with this pytest-ascend")
        return
    relative = result.perplexity / recorded["perplexity"] - 1
    benchmark.extra_info["perplexity_vs_golden"] = relative
    bound = golden_bounds(model, ascend_plan, golden).perplexity
    ascend_progress(f"{line}; golden ({golden.dtype}) {recorded['perplexity']:.6g}: "
                    f"{relative:+.3%} (bound {bound:.3%})")
    assert abs(relative) <= bound, (
        f"perplexity {result.perplexity:.6g} differs from the {golden.describe()}'s "
        f"{recorded['perplexity']:.6g} by {relative:+.3%}, more than the {bound:.3%} "
        f"{ascend_plan.dtype} allows")
