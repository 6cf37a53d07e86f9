"""The prefix cache's bookkeeping on a one-layer transformers Qwen2 built in memory (no
checkpoint, milliseconds to build): its hit rate against an exact count, which leaf LRU
eviction takes, the budget, and that reused KV gives the logits a full recompute gives."""

import pytest
import torch

from conftest import in_memory_qwen2
from pytest_ascend.features.prefix_cache import PrefillResult, PrefixCache
from pytest_ascend.model.hf_compat import cache_tensors, forward_kwargs, output_cache


@pytest.fixture(scope="module")
def model():
    return in_memory_qwen2(vocab_size=64, max_positions=128)


def full_logits(model, ids):
    with torch.inference_mode():
        return model(input_ids=torch.tensor([ids])).logits[:, -1, :]


def test_hit_rate_is_reused_tokens_over_every_prompt_token_seen(model):
    cache = PrefixCache(model, budget_tokens=1000)
    assert cache.hit_rate == 0.0
    cache.prefill(list(range(1, 11)))  # 10 tokens, none cached
    assert cache.hit_rate == 0.0
    cache.prefill(list(range(1, 11)) + [20, 21])  # 12 tokens, 10 reused
    assert cache.matched_tokens_total == 10 and cache.prompt_tokens_seen == 22
    assert cache.hit_rate == 10 / 22
    cache.prefill([30, 31, 32])  # 3 new tokens
    assert cache.hit_rate == 10 / 25
    assert cache.cached_tokens == 15


def test_the_last_prompt_token_is_always_computed(model):
    cache = PrefixCache(model, budget_tokens=1000)
    cache.prefill([5, 6, 7, 8])
    again = cache.prefill([5, 6, 7, 8])
    assert (again.matched_tokens, again.prompt_tokens, again.computed_tokens) == (3, 4, 1)
    assert cache.prefill([9]).matched_tokens == 0
    cache.prefill([5, 6, 1])  # splits [5, 6, 7, 8] after [5, 6]
    split = cache.prefill([5, 6, 7, 8])
    assert (split.matched_tokens, split.computed_tokens) == (3, 1)


def test_reused_kv_gives_the_logits_of_a_full_recompute(model):
    cache = PrefixCache(model, budget_tokens=1000)
    base = list(range(10, 40))
    for ids in (base, base + [5, 6], base[:12] + [9, 9], base[:12] + [9, 8, 7], [3, 4]):
        result = cache.prefill(torch.tensor([ids]))
        assert isinstance(result, PrefillResult) and result.prompt_tokens == len(ids)
        torch.testing.assert_close(result.logits, full_logits(model, ids), rtol=1e-5, atol=1e-5)
    assert cache.prefill(base[:12] + [9, 8, 7, 1]).matched_tokens == 15


def test_lru_evicts_the_least_recently_used_leaf_never_the_newest(model):
    cache = PrefixCache(model, budget_tokens=10)
    cache.prefill([1, 2, 3, 4])
    cache.prefill([11, 12, 13, 14])
    cache.prefill([1, 2, 3, 4])  # [1..4] used again: [11..14] is now the oldest
    cache.prefill([21, 22, 23, 24])  # 12 tokens: one leaf must go
    assert cache.cached_tokens == 8
    assert cache.prefill([21, 22, 23, 24, 25]).matched_tokens == 4  # the newest stayed
    assert cache.prefill([1, 2, 3, 4, 5]).matched_tokens == 4  # the recently used stayed
    assert cache.prefill([11, 12, 13, 14, 15]).matched_tokens == 0  # the oldest went


def test_eviction_keeps_the_budget_exactly_and_frees_what_it_drops(model):
    cache = PrefixCache(model, budget_tokens=9)
    cache.prefill([1, 2, 3])
    cache.prefill([4, 5, 6])
    cache.prefill([7, 8, 9])
    assert cache.cached_tokens == 9  # at the budget: nothing evicted
    assert cache.prefill([1, 2, 3, 0]).matched_tokens == 3
    cache.prefill([10, 11, 12])  # over it by 3 (+1 for [1, 2, 3, 0]): the two oldest leaves go
    assert cache.cached_tokens <= 9
    assert cache.prefill([4, 5, 6, 0]).matched_tokens == 0


def test_a_shared_prefix_splits_an_edge_and_is_stored_once(model):
    cache = PrefixCache(model, budget_tokens=1000)
    cache.prefill([1, 2, 3, 4, 5, 6])
    cache.prefill([1, 2, 3, 7, 8])
    assert cache.cached_tokens == 8
    assert cache.prefill([1, 2, 3, 4, 5, 6, 9]).matched_tokens == 6
    assert cache.prefill([1, 2, 3, 7, 8, 9]).matched_tokens == 5
    assert cache.prefill([1, 2, 9]).matched_tokens == 2


def test_a_split_edge_keeps_its_recency(model):
    """Splitting a cached edge must not make its upper part look new or old."""
    cache = PrefixCache(model, budget_tokens=9)
    cache.prefill([1, 2, 3, 4])
    cache.prefill([11, 12, 13])
    cache.prefill([1, 2, 5, 6])  # splits [1..4] after 2; [1, 2, ...] is now the newest
    assert cache.cached_tokens == 9
    cache.prefill([21])  # one over: the oldest leaf, [11, 12, 13], goes
    assert cache.prefill([1, 2, 5, 6, 0]).matched_tokens == 4
    assert cache.prefill([11, 12, 13, 0]).matched_tokens == 0


def test_insert_caches_a_longer_sequence_for_the_next_turn(model):
    cache = PrefixCache(model, budget_tokens=1000)
    first = cache.prefill([1, 2, 3])
    with torch.inference_mode():
        step = model(input_ids=torch.tensor([[4]]),
                     **forward_kwargs(model, first.past_key_values))
    cache.insert([1, 2, 3, 4], output_cache(step))
    assert cache.cached_tokens == 4
    assert cache.prefill([1, 2, 3, 4, 5]).matched_tokens == 4


def test_bad_input_is_refused_in_words(model):
    with pytest.raises(ValueError, match=r"^budget_tokens must be >= 0, got -1$"):
        PrefixCache(model, budget_tokens=-1)
    assert PrefixCache(model, budget_tokens=0).budget_tokens == 0
    cache = PrefixCache(model, budget_tokens=10)
    with pytest.raises(ValueError, match="^prefill needs at least one token$"):
        cache.prefill([])
    with pytest.raises(ValueError, match="^PrefixCache takes one prompt at a time, got a batch "
                                         "of 2$"):
        cache.prefill(torch.tensor([[1, 2, 3], [4, 5, 6]]))
    short = cache.prefill([1, 2])
    with pytest.raises(ValueError, match="^the cache holds 2 positions, fewer than the 3 "
                                         "tokens to insert$"):
        cache.insert([1, 2, 3], short.past_key_values)
    assert cache.prefill(torch.tensor([1, 2, 3])).matched_tokens == 2


def test_a_result_is_the_callers_to_change(model):
    """Decoding from (or overwriting) a result's cache leaves the stored KV as it was."""
    cache = PrefixCache(model, budget_tokens=1000)
    ids = list(range(1, 9))
    cache.prefill(ids)
    reused = cache.prefill(ids + [20])
    with torch.inference_mode():
        for keys, values in cache_tensors(reused.past_key_values):
            keys.fill_(7.0)
            values.fill_(7.0)
    again = cache.prefill(ids + [21])
    torch.testing.assert_close(again.logits, full_logits(model, ids + [21]), rtol=1e-5,
                               atol=1e-5)
