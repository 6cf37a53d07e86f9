"""Long generation: decode must not slow down faster than its growing KV cache explains."""

import pytest

from pytest_ascend.measure.interleave import RoundRatios, bound_problem
from pytest_ascend.model.prompts import SEED_PROMPTS, chat_prompt

pytestmark = pytest.mark.npu

NEW_TOKENS = 320
WINDOW = 50


@pytest.mark.slow(except_smoke=True)
def test_decode_speed_holds_over_long_generation(benchmark_generation, benchmark, tokenizer,
                                                 decoder_cost, ascend_perf_verdict):
    prompt = chat_prompt(tokenizer, SEED_PROMPTS["long_continuation"])
    result, _, _ = benchmark_generation([prompt], max_new_tokens=NEW_TOKENS)

    # Each run's last steps against its own first ones: the two windows of one run share
    # most of its load, and the median over runs ignores a disturbed one.
    decay = RoundRatios(tuple(result.decay_ratios(WINDOW)))
    # A bytes-bound step reads the weights plus the KV cache, so the cache alone may slow the
    # last steps by this ratio (window midpoints); 25% on top covers timing noise. Recomputing
    # the prefix each step, or a cache that copies itself, grows far faster.
    context = result.runs[0].context_tokens
    expected = decoder_cost.decode_bytes(1, context + NEW_TOKENS - WINDOW // 2) / (
        decoder_cost.decode_bytes(1, context + WINDOW // 2)
    )
    bound = max(1.0, expected) * 1.25
    benchmark.extra_info.update(**decay.report("decay_ratio"), decay_expected_from_kv=expected,
                                decay_bound=bound)

    ascend_perf_verdict(bound_problem(
        decay, f"decode from the first {WINDOW} steps to the last {WINDOW} (KV growth "
               f"explains {expected:.2f}x)", at_most=bound))
