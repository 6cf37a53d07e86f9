"""Memory: the KV cache takes what the config says, peaks are visible, repeated generations
do not leak, and the seed's advice (empty_cache) is measured rather than repeated."""

import gc
import time

import pytest
import torch

from pytest_ascend.measure.memory import decode_steps_for, kv_growth_problem, measure_kv_growth
from pytest_ascend.model.arithmetic import kv_bytes_per_token
from pytest_ascend.model.greedy import greedy_generate
from pytest_ascend.model.prompts import SEED_PROMPTS, chat_prompt, long_prompt_ids

pytestmark = pytest.mark.npu

MiB = 1 << 20
WARMUP_STEPS = 16
KV_BUDGET_S = 60


def test_kv_growth_matches_the_config(benchmark, model, tokenizer, npu_device):
    """The cache tensors grow by exactly what the config says, on every device. The device's
    memory figure is a second check with bounds both ways (measure.memory.kv_growth_problem):
    an allocator's within 15% of the cache; a host's resident set must hold most of the cache
    and may exceed it only by a stated allowance. The decode is sized to about a minute on
    this device (2048 steps where that fits)."""
    ids = torch.tensor([long_prompt_ids(tokenizer, 64)], device=model.device)
    started = time.perf_counter()
    measure_kv_growth(model, ids, WARMUP_STEPS, npu_device)  # warm-up, and the step time
    step_s = (time.perf_counter() - started) / WARMUP_STEPS
    new_tokens = decode_steps_for(step_s, KV_BUDGET_S)
    growth = benchmark.pedantic(measure_kv_growth, args=(model, ids, new_tokens, npu_device),
                                rounds=1, iterations=1)
    element = next(model.parameters()).element_size()
    benchmark.extra_info.update(
        new_tokens=new_tokens, kv_bytes_per_token=kv_bytes_per_token(model.config, element),
        cache_bytes=growth.cache_bytes, memory_bytes=growth.memory_bytes,
        expected_bytes=growth.expected_bytes, ratio=growth.ratio, memory_source=growth.source,
        excess_bytes=growth.excess_bytes,
    )
    problem = kv_growth_problem(growth, allocator=npu_device.platform.has_device_memory)
    assert problem is None, problem


def test_peak_memory_of_prefill_and_decode(benchmark, model, tokenizer, npu_device,
                                           memory_sampler):
    prompt = chat_prompt(tokenizer, SEED_PROMPTS["long_continuation"])
    ids = torch.tensor([long_prompt_ids(tokenizer, 1024)], device=model.device)
    gc.collect()
    npu_device.reset_peak()
    base = npu_device.memory()
    with torch.inference_mode():
        model(input_ids=ids)
    after_prefill = npu_device.memory()
    npu_device.reset_peak()
    benchmark.pedantic(greedy_generate, args=(model, tokenizer, [prompt], 64),
                       kwargs={"ignore_eos": True}, rounds=1, iterations=1)
    after_decode = npu_device.memory()
    benchmark.extra_info.update(
        memory_source=base.source, allocated_before=base.allocated,
        prefill_peak=after_prefill.peak, decode_peak=after_decode.peak,
        reserved=after_decode.reserved, allocated=after_decode.allocated,
        fragmentation=1 - after_decode.allocated / after_decode.reserved
        if after_decode.reserved else None,
        sampled_peak=memory_sampler.peak_allocated,
    )
    assert after_prefill.peak >= base.allocated and after_decode.peak >= after_decode.allocated
    assert after_decode.reserved >= after_decode.allocated
    assert len(memory_sampler.samples) >= 1


def test_repeated_generations_do_not_leak(benchmark, model, tokenizer, npu_device):
    """20 generations in a row: allocated memory after each returns to the same level
    (accelerators: within 1 MiB; cpu, resident set after handing freed pages back: within
    4 MiB). A cache kept alive per generation would add its KV each time."""
    prompt = chat_prompt(tokenizer, SEED_PROMPTS["qa_ai"])

    def generate_and_measure():
        greedy_generate(model, tokenizer, [prompt], 32, ignore_eos=True)
        npu_device.empty_cache()
        return npu_device.memory().allocated

    generate_and_measure()  # warm-up: allocator and lazy state settle
    levels = [generate_and_measure() for _ in range(19)]
    levels.append(benchmark.pedantic(generate_and_measure, rounds=1, iterations=1))
    drift = levels[-1] - levels[0]
    bound = MiB if npu_device.platform.has_device_memory else 4 * MiB
    benchmark.extra_info.update(generations=20, first_allocated=levels[0],
                                last_allocated=levels[-1], drift_bytes=drift)
    assert drift <= bound, f"allocated memory rose {drift / MiB:.1f} MiB over 20 generations"


def test_empty_cache_returns_freed_blocks(benchmark, npu_device):
    """The seed advised calling empty_cache(); what it does is measured: after a tensor is
    freed, the caching allocator keeps its block reserved until empty_cache() returns it."""
    if not npu_device.platform.has_device_memory:
        pytest.skip("no caching allocator on cpu: empty_cache() has nothing to return "
                    "(run with --ascend-device npu or cuda)")
    size = 256 * MiB
    block = torch.empty(size, dtype=torch.uint8, device=npu_device.torch_device)
    del block
    npu_device.synchronize()
    kept = npu_device.memory().reserved
    benchmark.pedantic(npu_device.empty_cache, rounds=1, iterations=1)
    released = npu_device.memory().reserved
    benchmark.extra_info.update(freed_bytes=size, reserved_before=kept, reserved_after=released,
                                returned_bytes=kept - released)
    assert kept - released >= 0.9 * size, "empty_cache() did not return the freed block"
