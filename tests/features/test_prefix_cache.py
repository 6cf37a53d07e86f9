"""Prefix caching over the real KV cache: exact against full recompute, faster by about the
share of the prompt it skips, useful across chat turns, and bounded by its budget."""

import pytest
import torch

from pytest_ascend.features.prefix_cache import PrefixCache
from pytest_ascend.measure.interleave import bound_problem, round_ratios
from pytest_ascend.measure.stats import median
from pytest_ascend.model.compare import compare_greedy
from pytest_ascend.model.greedy import greedy_continue
from pytest_ascend.model.hf_compat import output_cache
from pytest_ascend.model.prompts import chat_prompt, long_prompt_ids
from pytest_ascend.numerics.divergence import shared_topk_delta
from pytest_ascend.numerics.tolerance import dlogprob_bound, tie_margin

pytestmark = pytest.mark.npu

# A reused prefix and a full recompute run the same math with different matmul shapes, so
# they agree to the dtype's rounding accumulated over the layers: the suite's one tolerance
# (numerics.tolerance), over the top-k of the recompute as a golden comparison takes it.
TOP_K = 20
SUFFIX = 16
NEW_TOKENS = 16
ROUNDS = 7  # interleaved rounds of recompute and reuse


def full_prefill(model, ids):
    with torch.inference_mode():
        out = model(input_ids=torch.tensor([ids], device=model.device), use_cache=True)
    return out.logits[:, -1, :], output_cache(out)


def assert_same_as_recompute(model, ids, result, continuation, dtype):
    """`result` (a PrefillResult) and the greedy `continuation` decoded from its cache match
    a full prefill of `ids` and its own continuation."""
    logits, cache = full_prefill(model, ids)
    layers = model.config.num_hidden_layers
    full_lp = torch.log_softmax(logits.double(), dim=-1)
    reused_lp = torch.log_softmax(result.logits.double(), dim=-1)
    top = full_lp.topk(TOP_K, dim=-1)
    error = float(shared_topk_delta(top.indices, top.values, reused_lp)[0])
    bound = dlogprob_bound(dtype, layers=layers)
    assert error <= bound, (
        f"reused prefix of {result.matched_tokens} tokens: last-position log-probabilities "
        f"differ by {error:.3g} over the top-{TOP_K}, more than {bound:g}")
    full = greedy_continue(model, cache, logits, len(continuation.tokens))
    verdict = compare_greedy(full.tokens, full.logits, continuation.tokens, continuation.logits,
                             tie_margin(dtype, layers=layers))
    assert verdict.close, f"greedy continuation after a reused prefix: {verdict.describe()}"


def prefill_and_check(model, cache, ids, dtype):
    result = cache.prefill(ids)
    continuation = greedy_continue(model, result.past_key_values, result.logits, NEW_TOKENS)
    assert_same_as_recompute(model, ids, result, continuation, dtype)
    return result


def suffix_ids(tokenizer, n, salt):
    """`n` tokens of text that differ with `salt`, to follow a shared prefix."""
    ids = tokenizer(f" 第{salt}个问题: question number {salt} of many, please answer.",
                    add_special_tokens=False)["input_ids"]
    return (ids * (n // len(ids) + 1))[:n]


def test_reused_prefix_equals_full_recompute(model, tokenizer, ascend_plan):
    prefix = long_prompt_ids(tokenizer, 300)
    cache = PrefixCache(model, budget_tokens=10_000)
    dtype = ascend_plan.dtype
    first = prefix + suffix_ids(tokenizer, SUFFIX, 1)
    assert prefill_and_check(model, cache, first, dtype).matched_tokens == 0
    assert prefill_and_check(model, cache, first, dtype).matched_tokens == len(first) - 1
    second = prefix + suffix_ids(tokenizer, SUFFIX, 2)
    assert prefill_and_check(model, cache, second, dtype).matched_tokens >= len(prefix)
    shorter = prefix[:150]  # ends inside a cached edge
    assert prefill_and_check(model, cache, shorter, dtype).matched_tokens == 149


@pytest.mark.parametrize("prefix_tokens", [
    256, 1024, pytest.param(2048, marks=pytest.mark.slow(except_smoke=True))])
def test_prefix_reuse_speeds_up_prefill(benchmark, model, tokenizer, npu_device, ascend_plan,
                                        ascend_progress, ascend_perf_verdict, prefix_tokens):
    prefix = long_prompt_ids(tokenizer, prefix_tokens)
    reuse = PrefixCache(model, budget_tokens=4 * (prefix_tokens + SUFFIX))
    recompute = PrefixCache(model, budget_tokens=0)  # same code path, nothing to reuse
    reuse.prefill(prefix + suffix_ids(tokenizer, SUFFIX, 0))
    prompts = iter(prefix + suffix_ids(tokenizer, SUFFIX, salt) for salt in range(1, 10_000))
    for cache in (reuse, recompute):  # warm-up of both paths
        cache.prefill(next(prompts))

    def timed(cache, into):
        with npu_device.timer() as t:
            result = cache.prefill(next(prompts))
        into.append((t.elapsed_ms, result.matched_tokens))

    # Recompute is each round's setup: the two alternate and share the round's load.
    recomputed, reused = [], []
    benchmark.pedantic(timed, args=(reuse, reused), setup=lambda: timed(recompute, recomputed),
                       rounds=ROUNDS, iterations=1)
    assert all(matched >= prefix_tokens for _, matched in reused)
    assert all(matched == 0 for _, matched in recomputed)
    speedup = round_ratios([ms for ms, _ in recomputed], [ms for ms, _ in reused])
    ideal = (prefix_tokens + SUFFIX) / SUFFIX
    benchmark.extra_info.update(
        prefix_tokens=prefix_tokens, suffix_tokens=SUFFIX, prompt_tokens=prefix_tokens + SUFFIX,
        recompute_ms=median(ms for ms, _ in recomputed), reuse_ms=median(ms for ms, _ in reused),
        ideal_speedup=ideal, **speedup.report("speedup"),
    )
    ascend_progress(f"prefix cache, {prefix_tokens}-token prefix: prefill "
                    f"{speedup.describe()} faster with reuse (ideal {ideal:.0f}x)")

    # On the tiny CPU model a 2k prefix measures ~10x; anywhere, reuse must not be slower.
    at_least = 4.0 if prefix_tokens == 2048 and ascend_plan.smoke else 1.0
    ascend_perf_verdict(bound_problem(
        speedup, f"prefill with {prefix_tokens} reused tokens over recompute", at_least=at_least))


def test_multi_turn_chat_reuses_earlier_turns(benchmark, model, tokenizer, npu_device,
                                              ascend_plan):
    """Three chat turns; after each, the prompt and the reply go into the cache, so the next
    turn prefills only its new message."""
    questions = ["请介绍一下人工智能。", "它和机器学习有什么关系?", "Summarise that in English."]
    turns = []

    def converse():
        cache, messages = PrefixCache(model, budget_tokens=20_000), []
        turns.clear()
        for question in questions:
            messages.append({"role": "user", "content": question})
            ids = tokenizer(chat_prompt_for(tokenizer, messages),
                            add_special_tokens=False)["input_ids"]
            with npu_device.timer() as prefill:
                result = cache.prefill(ids)
            reply = greedy_continue(model, result.past_key_values, result.logits, NEW_TOKENS)
            cache.insert(ids + reply.tokens[:-1], result.past_key_values)
            turns.append({"ids": ids, "result": result, "reply": reply,
                          "prefill_ms": prefill.elapsed_ms})
            messages.append({"role": "assistant",
                             "content": tokenizer.decode(reply.tokens, skip_special_tokens=True)})
        return cache

    cache = benchmark.pedantic(converse, rounds=1, iterations=1)
    previous = 0
    for turn in turns:
        assert_same_as_recompute(model, turn["ids"], turn["result"], turn["reply"],
                                 ascend_plan.dtype)
        assert turn["result"].matched_tokens >= previous - 1, (
            f"a turn reused {turn['result'].matched_tokens} tokens; the previous turn's prompt "
            f"alone was {previous}")
        previous = len(turn["ids"])
    saved = sum(t["result"].matched_tokens for t in turns)
    benchmark.extra_info.update(
        turns=[{"prompt_tokens": len(t["ids"]), "matched_tokens": t["result"].matched_tokens,
                "prefill_ms": t["prefill_ms"]} for t in turns],
        hit_rate=cache.hit_rate, tokens_saved=saved,
    )
    assert turns[0]["result"].matched_tokens == 0 and saved > 0
    # Every prompt token went through prefill once; the share of them the cache supplied.
    assert cache.hit_rate == pytest.approx(saved / sum(len(t["ids"]) for t in turns))


def chat_prompt_for(tokenizer, messages):
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False,
                                             add_generation_prompt=True)
    return chat_prompt(tokenizer, "\n".join(m["content"] for m in messages))


def test_eviction_keeps_the_budget_and_never_serves_stale_kv(model, tokenizer, ascend_plan):
    budget = 500
    cache = PrefixCache(model, budget_tokens=budget)
    corpus = long_prompt_ids(tokenizer, 2000)
    prompts = [corpus[200 * i: 200 * i + 180] + suffix_ids(tokenizer, 8, i) for i in range(6)]
    prompts += [prompts[0], prompts[1][:100] + suffix_ids(tokenizer, 30, 99), prompts[5]]
    matched = []
    for ids in prompts:
        matched.append(prefill_and_check(model, cache, ids, ascend_plan.dtype).matched_tokens)
        assert cache.cached_tokens <= budget
    assert matched[6] == 0  # the first prompt was evicted long before it came back
    assert cache.prefill(prompts[-1]).matched_tokens == len(prompts[-1]) - 1  # the newest stays
