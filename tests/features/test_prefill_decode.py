"""Prefill and decode as separate phases: the KV handed from one to the other decodes exactly
as uninterrupted generation does, and each phase's time is reported."""

import pytest

from pytest_ascend.features.pd_split import decode_phase, prefill_phase
from pytest_ascend.measure.stats import median
from pytest_ascend.model.arithmetic import kv_bytes_per_token
from pytest_ascend.model.greedy import greedy_generate
from pytest_ascend.model.prompts import SEED_PROMPTS, chat_prompt

pytestmark = pytest.mark.npu

NEW_TOKENS = 64


@pytest.mark.parametrize("name", ["qa_ai", "long_continuation"])
def test_decode_from_handed_over_kv_equals_uninterrupted_generation(
        benchmark, model, tokenizer, npu_device, ascend_progress, name):
    prompt = chat_prompt(tokenizer, SEED_PROMPTS[name])
    ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
    expected = greedy_generate(model, tokenizer, [prompt], NEW_TOKENS, ignore_eos=True)[0].tokens
    runs = []

    def disaggregated():
        handoff = prefill_phase(model, ids, npu_device)
        runs.append((handoff, decode_phase(model, handoff, NEW_TOKENS, npu_device)))

    disaggregated()  # warm-up
    runs.clear()
    benchmark.pedantic(disaggregated, rounds=3, iterations=1)

    for _, decoded in runs:
        assert decoded.tokens == expected, "decoding from the handed-over KV diverged"
    prefill_ms = median(h.prefill_ms for h, _ in runs)
    handoff_ms = median(h.handoff_ms for h, _ in runs)
    decode_ms = median(sum(d.step_ms) for _, d in runs)
    tpot = decode_ms / (NEW_TOKENS - 1)
    share = decode_ms / (prefill_ms + handoff_ms + decode_ms)
    benchmark.extra_info.update(
        prompt_tokens=int(ids.shape[1]), output_tokens=NEW_TOKENS, prefill_ms=prefill_ms,
        handoff_ms=handoff_ms, handoff_bytes=runs[0][0].handoff_bytes, ttft_ms=prefill_ms,
        tpot_ms=tpot, decode_step_p50_ms=median(s for _, d in runs for s in d.step_ms),
        decode_share=share,
    )
    ascend_progress(f"prefill/decode split [{name}]: prefill {prefill_ms:.2f} ms, hand-over "
                    f"{handoff_ms:.2f} ms, TPOT {tpot:.2f} ms, decode {share:.0%} of the time")
    element = next(model.parameters()).element_size()
    kv_bytes = kv_bytes_per_token(model.config, element) * int(ids.shape[1])
    for handoff, decoded in runs:
        # The hand-over carries the prompt's whole KV, nothing more; the decode phase timed
        # each of its steps (the first token comes from the prefill's logits).
        assert handoff.handoff_bytes == kv_bytes, (
            f"handed over {handoff.handoff_bytes} bytes; the config says the prompt's KV "
            f"takes {kv_bytes}")
        assert len(decoded.step_ms) == NEW_TOKENS - 1 and all(ms > 0 for ms in decoded.step_ms)
        assert handoff.prefill_ms > 0 and handoff.handoff_ms > 0
