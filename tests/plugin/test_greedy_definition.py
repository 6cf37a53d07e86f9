"""One definition of "greedy for exactly N tokens": the argmax at every step, eos included and
never a stop. On a model whose eos becomes the argmax mid-answer (as a real chat model's
does at the end of nearly every answer), the transformers reference and every path compared
with it must pick eos at the same steps."""

import pytest
import torch

from pytest_ascend.features.pd_split import decode_phase, prefill_phase
from pytest_ascend.features.prefix_cache import PrefixCache
from pytest_ascend.features.speculative import speculative_generate
from pytest_ascend.measure.generation import measure_generation
from pytest_ascend.model.greedy import greedy_continue, greedy_generate
from pytest_ascend.model.loading import load_under_test
from pytest_ascend.model.prompts import SEED_PROMPTS, chat_prompt
from pytest_ascend.platforms.cpu import CpuDevice

N = 32
# The tiny recipe with its eos row of the vocabulary projection scaled: eos becomes the
# argmax mid-answer on most seed prompts (measured: 5 of 6 within 32 tokens).
EOS_PLANTED = "tiny:eos_logit_scale=2"


@pytest.fixture(scope="module")
def planted(shared_cache):
    return load_under_test(EOS_PLANTED, CpuDevice(), "float32", cache_dir=shared_cache)


@pytest.fixture(scope="module")
def planted_draft(shared_cache):
    return load_under_test("tiny-draft", CpuDevice(), "float32", cache_dir=shared_cache,
                           base_spec=EOS_PLANTED)


@pytest.fixture(scope="module")
def prompts(planted):
    return [chat_prompt(planted.tokenizer, text) for text in SEED_PROMPTS.values()]


@pytest.fixture(scope="module")
def reference(planted, prompts):
    """transformers' generate, one prompt at a time, under the suite's definition."""
    return [greedy_generate(planted.model, planted.tokenizer, [p], N, ignore_eos=True)[0].tokens
            for p in prompts]


def eos_id(planted):
    return planted.tokenizer.convert_tokens_to_ids("<|im_end|>")


def argmax_by_recompute(model, ids, steps):
    """The definition computed independently: no cache, the whole sequence each step."""
    tokens = []
    with torch.inference_mode():
        for _ in range(steps):
            token = int(model(input_ids=ids).logits[0, -1].argmax())
            tokens.append(token)
            ids = torch.cat([ids, torch.tensor([[token]])], dim=1)
    return tokens


def test_the_reference_picks_eos_mid_answer_and_goes_on(planted, prompts, reference):
    eos = eos_id(planted)
    assert all(len(tokens) == N for tokens in reference)
    mid_answer = [tokens for tokens in reference if eos in tokens[:-1]]
    assert len(mid_answer) >= 3, "the planted model no longer makes eos the argmax mid-answer"
    for prompt, tokens in zip(prompts, reference):
        ids = planted.tokenizer(prompt, return_tensors="pt")["input_ids"]
        assert tokens == argmax_by_recompute(planted.model, ids, N)


def test_without_ignore_eos_generation_ends_at_the_first_eos(planted, prompts, reference):
    eos = eos_id(planted)
    for prompt, full in zip(prompts, reference):
        stopped = greedy_generate(planted.model, planted.tokenizer, [prompt], N)[0].tokens
        expected = full[: full.index(eos) + 1] if eos in full else full
        assert stopped == expected


def test_a_left_padded_batch_agrees_with_the_reference(planted, prompts, reference):
    batch = greedy_generate(planted.model, planted.tokenizer, prompts, N, ignore_eos=True)
    assert [out.tokens for out in batch] == reference


def test_every_path_decodes_as_the_reference(planted, planted_draft, prompts, reference):
    model, tok, device = planted.model, planted.tokenizer, CpuDevice()
    for prompt, expected in zip(prompts, reference):
        ids = tok(prompt, return_tensors="pt")["input_ids"]
        handed_over = decode_phase(model, prefill_phase(model, ids, device), N, device)
        cached = PrefixCache(model, budget_tokens=4096).prefill(ids)
        from_cache = greedy_continue(model, cached.past_key_values, cached.logits, N)
        speculative = speculative_generate(model, planted_draft.model, ids, max_new_tokens=N,
                                           num_draft_tokens=4, stop_at_eos=False)
        timed = measure_generation(model, tok, [prompt], max_new_tokens=N, device=device,
                                   repetitions=1)
        assert handed_over.tokens == expected, "prefill/decode hand-over"
        assert from_cache.tokens == expected, "prefix cache"
        assert speculative.tokens == expected, "speculative decoding"
        assert list(timed.runs[0].tokens[0]) == expected, "the timed loop"
