"""Throughput and per-request latency at batch 1, 2, 4 and 8, and the scaling over batch 1
(the seed's "1.2x at batch 2" is the figure users will hold this against)."""

import pytest

from pytest_ascend.measure.generation import measure_generation
from pytest_ascend.model.prompts import SEED_PROMPTS, chat_prompt

pytestmark = pytest.mark.npu

BATCH_SIZES = (1, 2, 4, 8)
NEW_TOKENS = 64


@pytest.fixture(scope="module")
def sweep_prompts(tokenizer):
    return [chat_prompt(tokenizer, text) for text in SEED_PROMPTS.values()]


class Batch1Baseline:
    """Batch-1 throughput in this run: the batch-1 benchmark's if it ran first, else measured
    on demand, so a scaling factor is never relative to another run's number."""

    def __init__(self, measure):
        self._measure = measure
        self.tokens_per_s = None

    def get(self):
        if self.tokens_per_s is None:
            self.tokens_per_s = self._measure()
        return self.tokens_per_s


@pytest.fixture(scope="module")
def batch1_baseline(model, tokenizer, npu_device, sweep_prompts, ascend_progress):
    def measure():
        ascend_progress("batch sweep: measuring the batch-1 baseline")
        result = measure_generation(
            model, tokenizer, sweep_prompts, max_new_tokens=NEW_TOKENS, device=npu_device
        )
        return result.summary().throughput_tokens_per_s

    return Batch1Baseline(measure)


@pytest.mark.parametrize("batch_size", BATCH_SIZES)
def test_batch_throughput(benchmark_generation, benchmark, sweep_prompts, batch1_baseline,
                          batch_size):
    _, metrics = benchmark_generation(sweep_prompts, max_new_tokens=NEW_TOKENS,
                                      batch_size=batch_size)
    if batch_size == 1:
        batch1_baseline.tokens_per_s = metrics["throughput_tokens_per_s"]
    scaling = metrics["throughput_tokens_per_s"] / batch1_baseline.get()
    benchmark.extra_info["scaling_vs_batch1"] = scaling

    assert metrics["batch_size"] == batch_size
    if batch_size > 1:
        # Decode reads the weights once per step for the whole batch: batching that does not
        # raise throughput is a regression (padding, a serialised kernel, a lost cache).
        assert scaling > 1.0, f"batch {batch_size} gives {scaling:.2f}x the batch-1 throughput"
        # B sequences cannot come out more than B times as fast as one: a step over B does at
        # least the work of a step over 1. 25% covers the noise of two medians.
        assert scaling <= batch_size * 1.25, f"batch {batch_size}: {scaling:.2f}x is impossible"
