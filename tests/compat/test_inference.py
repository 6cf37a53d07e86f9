"""The model runs on the device and its answers are sane, repeatable and batch-invariant."""

import pytest
import torch

from pytest_ascend.model.compare import compare_greedy
from pytest_ascend.model.greedy import greedy_generate
from pytest_ascend.model.prompts import SEED_PROMPTS, chat_prompt, long_prompt_ids
from pytest_ascend.numerics.nonfinite import diagnose_nonfinite_logits
from pytest_ascend.numerics.tolerance import tie_margin

pytestmark = pytest.mark.npu

NEW_TOKENS = 32


@pytest.fixture(scope="module")
def seed_prompts(tokenizer):
    return {name: chat_prompt(tokenizer, text) for name, text in SEED_PROMPTS.items()}


def test_logits_are_finite_on_seed_prompts(model, tokenizer, seed_prompts, ascend_plan):
    bad = []
    for name, prompt in seed_prompts.items():
        ids = tokenizer(prompt, return_tensors="pt").to(model.device)
        with torch.inference_mode():
            logits = model(**ids).logits
        if not torch.isfinite(logits).all():
            bad.append(name)
    assert not bad, diagnose_nonfinite_logits(model, ascend_plan.dtype, bad)


@pytest.mark.parametrize("name", sorted(SEED_PROMPTS))
def test_greedy_generation_is_nonempty_repeatable_and_varied(model, tokenizer, seed_prompts, name):
    first = greedy_generate(model, tokenizer, [seed_prompts[name]], NEW_TOKENS)[0]
    second = greedy_generate(model, tokenizer, [seed_prompts[name]], NEW_TOKENS)[0]

    assert first.tokens, "greedy generation produced no tokens"
    unknown = sorted({t for t in first.tokens if t >= len(tokenizer)})
    assert not unknown, (
        f"the model generated ids its tokenizer does not have ({unknown[:5]}; the tokenizer "
        f"has {len(tokenizer)} tokens, the model's vocabulary {model.config.vocab_size}): "
        f"model and tokenizer do not match")
    assert tokenizer.decode(first.tokens, skip_special_tokens=True).strip(), (
        f"only special tokens: {tokenizer.convert_ids_to_tokens(first.tokens[:8])}")
    assert first.tokens == second.tokens, "two greedy runs of the same prompt differ"
    if len(first.tokens) >= 8:
        distinct = len(set(first.tokens)) / len(first.tokens)
        assert distinct >= 0.25, (
            f"degenerate output: {len(set(first.tokens))} distinct of {len(first.tokens)} "
            f"tokens ({tokenizer.decode(first.tokens)!r})"
        )


def test_left_padded_batch_matches_single_requests(model, tokenizer, seed_prompts, ascend_plan):
    """Three prompts of different lengths in one left-padded batch decode as they do alone,
    or diverge only where the model was at a near-tie (vLLM's check_logprobs_close rule)."""
    names = ["qa_capital", "code_fibonacci", "long_continuation"]
    prompts = [seed_prompts[n] for n in names]
    lengths = {len(tokenizer(p)["input_ids"]) for p in prompts}
    assert len(lengths) > 1, "the batch must need padding to test it"

    batch = greedy_generate(model, tokenizer, prompts, NEW_TOKENS, ignore_eos=True)
    report, failures = [], []
    for name, prompt, batched in zip(names, prompts, batch):
        single = greedy_generate(model, tokenizer, [prompt], NEW_TOKENS, ignore_eos=True)[0]
        verdict = compare_greedy(
            single.tokens, single.logits, batched.tokens, batched.logits,
            tie_margin(ascend_plan.dtype, layers=model.config.num_hidden_layers),
        )
        report.append(f"{name}: {verdict.describe()}")
        if not verdict.close:
            failures.append(name)
    print("\n".join(report))
    assert not failures, "batch and single differ beyond a near-tie:\n" + "\n".join(report)


@pytest.mark.slow(except_smoke=True)
def test_long_context_prefill_and_generate(model, tokenizer, npu_device):
    n_prompt = 8192
    if model.config.max_position_embeddings < n_prompt + NEW_TOKENS:
        pytest.skip(f"model supports {model.config.max_position_embeddings} positions < {n_prompt}")
    ids = torch.tensor([long_prompt_ids(tokenizer, n_prompt)], device=npu_device.torch_device)
    with torch.inference_mode():
        out = model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=NEW_TOKENS,
            min_new_tokens=NEW_TOKENS,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
            output_logits=True,
            return_dict_in_generate=True,
        )
    new = out.sequences[0, n_prompt:]
    assert new.numel() == NEW_TOKENS
    assert all(torch.isfinite(step).all() for step in out.logits), "non-finite logits at 8k context"
