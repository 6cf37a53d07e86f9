"""The feature modules from Python, as a notebook would use them: the radix tree's structure,
the speculative decoder's rules and errors, the memory sampler, on tiny recipes other than
the suite's default."""

import math
import threading

import pytest
import torch

from pytest_ascend.features.prefix_cache import PrefixCache
from pytest_ascend.features.speculative import greedy_verify, speculative_generate
from pytest_ascend.measure.memory import MemorySampler
from pytest_ascend.model.arithmetic import kv_bytes_per_token
from pytest_ascend.model.greedy import greedy_generate
from pytest_ascend.model.hf_compat import forward_kwargs
from pytest_ascend.model.loading import load_under_test
from pytest_ascend.platforms.cpu import CpuDevice
from pytest_ascend.platforms.device import MemorySnapshot


@pytest.fixture(scope="module")
def other_recipe(shared_cache):
    """A second tiny recipe and its draft: 2 layers, hidden 64."""
    spec = "tiny:num_hidden_layers=2,hidden_size=64,intermediate_size=192"
    target = load_under_test(spec, CpuDevice(), "float32", cache_dir=shared_cache)
    draft = load_under_test("tiny-draft", CpuDevice(), "float32", cache_dir=shared_cache,
                            base_spec=spec)
    return target, draft


def full_logits(model, ids):
    with torch.inference_mode():
        return model(input_ids=torch.tensor([ids])).logits[:, -1]


def test_prefix_cache_on_another_recipe_matches_recompute(other_recipe):
    model = other_recipe[0].model
    cache = PrefixCache(model, budget_tokens=1000)
    base = list(range(10, 90))
    for ids in (base, base + [5, 6, 7], base[:40] + [9, 9], base + [5, 6, 8], [3, 4]):
        result = cache.prefill(torch.tensor([ids]))
        assert result.prompt_tokens == len(ids)
        torch.testing.assert_close(result.logits, full_logits(model, ids), rtol=1e-4, atol=1e-4)
    assert cache.prefill(base + [5, 6, 8]).matched_tokens == len(base) + 2
    assert cache.prefill(base[:40] + [9, 9, 1]).matched_tokens == 42


def test_split_edges_keep_both_branches(tiny):
    cache = PrefixCache(tiny.model, budget_tokens=1000)
    cache.prefill([1, 2, 3, 4, 5, 6])
    cache.prefill([1, 2, 3, 7, 8])  # splits the first edge after 3 tokens
    assert cache.cached_tokens == 8
    assert cache.prefill([1, 2, 3, 4, 5, 6, 9]).matched_tokens == 6
    assert cache.prefill([1, 2, 3, 7, 8, 9]).matched_tokens == 5


def test_lru_leaf_goes_first_and_budget_zero_caches_nothing(tiny):
    cache = PrefixCache(tiny.model, budget_tokens=12)
    cache.prefill([1, 2, 3, 4, 5])
    cache.prefill([6, 7, 8, 9, 10])
    cache.prefill([1, 2, 3, 4, 5, 11])  # touches the first: the second is now least recent
    cache.prefill([12, 13, 14])
    assert cache.cached_tokens <= 12
    assert cache.prefill([6, 7, 8, 9, 10, 1]).matched_tokens == 0
    empty = PrefixCache(tiny.model, budget_tokens=0)
    empty.prefill([1, 2, 3])
    assert empty.cached_tokens == 0 and empty.prefill([1, 2, 3]).matched_tokens == 0


def test_results_can_be_decoded_without_corrupting_the_cache(tiny):
    model = tiny.model
    cache = PrefixCache(model, budget_tokens=1000)
    ids = list(range(20, 60))
    first = cache.prefill(ids)
    with torch.inference_mode():  # decode on from the result, growing its cache
        model(input_ids=torch.tensor([[7]]), **forward_kwargs(model, first.past_key_values))
    again = cache.prefill(ids + [3])
    torch.testing.assert_close(again.logits, full_logits(model, ids + [3]), rtol=1e-4, atol=1e-4)


def test_prefix_cache_rejects_bad_input(tiny):
    cache = PrefixCache(tiny.model, budget_tokens=10)
    with pytest.raises(ValueError, match="one prompt at a time"):
        cache.prefill(torch.ones(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="at least one token"):
        cache.prefill([])
    with pytest.raises(ValueError, match="budget_tokens"):
        PrefixCache(tiny.model, budget_tokens=-1)


@pytest.mark.parametrize("k", [1, 3, 6])
def test_speculation_on_another_recipe_equals_generate(other_recipe, k):
    target, draft = other_recipe
    tok = target.tokenizer
    for text in ("今天天气很好", "def fib(n):", "Machine learning needs data."):
        ids = tok(text, return_tensors="pt")["input_ids"]
        expected = greedy_generate(target.model, tok, [text], 40)[0].tokens
        result = speculative_generate(target.model, draft.model, ids, max_new_tokens=40,
                                      num_draft_tokens=k)
        assert result.tokens == expected
        assert result.target_forwards + result.accepted >= len(result.tokens)


def test_greedy_verify_keeps_the_agreeing_prefix_and_adds_the_targets_token():
    logits = torch.full((4, 10), -1.0)
    for row, best in enumerate([3, 5, 7, 9]):
        logits[row, best] = 1.0
    assert greedy_verify(logits, [3, 5, 7]) == ([3, 5, 7], 9)
    assert greedy_verify(logits, [3, 4, 7]) == ([3], 5)
    assert greedy_verify(logits, [0, 5, 7]) == ([], 3)


@pytest.mark.parametrize("kwargs, message", [
    (dict(max_new_tokens=0), "max_new_tokens"),
    (dict(num_draft_tokens=-1), "num_draft_tokens"),
    (dict(temperature=-0.5), "temperature"),
])
def test_speculative_rejects_bad_arguments(tiny, kwargs, message):
    args = dict(max_new_tokens=4) | kwargs
    with pytest.raises(ValueError, match=message):
        speculative_generate(tiny.model, tiny.model, [1, 2, 3], **args)


def test_sampling_is_reproducible_with_a_seed(tiny):
    run = lambda seed: speculative_generate(tiny.model, tiny.model, [5, 6, 7], max_new_tokens=12,
                                            temperature=1.0, seed=seed, stop_at_eos=False)
    assert run(3).tokens == run(3).tokens
    assert math.isclose(run(3).acceptance_rate, 1.0)


def test_kv_bytes_per_token_for_qwen25_14b():
    class Qwen14BConfig:
        num_attention_heads, hidden_size, num_key_value_heads, num_hidden_layers = 40, 5120, 8, 48
    assert kv_bytes_per_token(Qwen14BConfig, 2) == 192 * 1024


class CountingDevice(CpuDevice):
    """Memory that grows by one byte per snapshot; `sampled` is set at the fifth."""

    def __init__(self):
        super().__init__()
        self.calls = 0
        self.sampled = threading.Event()

    def memory(self):
        self.calls += 1
        if self.calls >= 5:
            self.sampled.set()
        return MemorySnapshot(self.calls, 2 * self.calls, 0, 0, None, "counting")


def test_memory_sampler_samples_in_the_background():
    """The test waits for five snapshots, however long a loaded machine takes to give the
    sampler's thread its turns, rather than for a sleep that should fit five intervals."""
    device = CountingDevice()
    with MemorySampler(device, interval_s=0.005) as sampler:
        assert device.sampled.wait(timeout=60), "the sampler took no 5 snapshots in 60 s"
    series = sampler.series()
    assert len(series["allocated"]) >= 5
    assert series["allocated"] == sorted(series["allocated"])
    assert series["reserved"] == [2 * a for a in series["allocated"]]
    assert sampler.peak_allocated == series["allocated"][-1]
    with pytest.raises(ValueError, match="interval"):
        MemorySampler(CountingDevice(), interval_s=0)


def test_memory_sampler_stops_quietly_when_the_device_fails():
    class Broken(CpuDevice):
        def memory(self):
            raise RuntimeError("device lost")

    sampler = MemorySampler(Broken(), interval_s=0.001).start()
    assert sampler.stop() == [] and "device lost" in sampler.error


def test_memory_sampler_fixture_series_reaches_the_json_report(pytester):
    pytester.makepyfile(
        """
        import time
        def test_sampled(memory_sampler):
            # wait for two samples of the sampler's own thread, however long a loaded
            # machine takes to schedule it, rather than for a sleep that should fit them
            deadline = time.monotonic() + 60
            while len(memory_sampler.samples) < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
        """
    )
    result = pytester.runpytest("--ascend-memory-interval", "0.01", "--json-report",
                                "--json-report-file=r.json")
    result.assert_outcomes(passed=1)
    import json

    test = json.loads((pytester.path / "r.json").read_text())["tests"][0]
    series = test["metadata"]["memory_samples"]
    assert series["interval_s"] == 0.01 and len(series["allocated"]) >= 2


def test_memory_interval_must_be_a_positive_number(pytester):
    pytester.makepyfile("def test_x():\n    pass\n")
    result = pytester.runpytest("--ascend-memory-interval", "soon")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*--ascend-memory-interval: 'soon' from command line*positive*"])
