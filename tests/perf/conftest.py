"""The perf suite's one way of benchmarking a generation workload.

Every perf test goes through `benchmark_generation`, so every benchmark is recorded alike:
the warm-up outside the timed rounds, one pytest-benchmark round per measured batch (the
device synchronized inside it), the metrics in `benchmark.extra_info` (and from there in the
JSON report) and one progress line per configuration.
"""

import gc
import time

import pytest

from pytest_ascend.measure.generation import GenerationMeasurer, consistency_problems
from pytest_ascend.measure.roofline import model_cost, roofline_metrics
from pytest_ascend.reports.progress import generation_line

# Measured passes over a workload's prompts: P50 is the headline, P95/P99 come mostly from
# the decode steps (hundreds per pass); more passes lengthen a real-model run linearly.
PASSES = 3


@pytest.fixture(scope="session")
def decoder_cost(model):
    """Bytes and FLOPs per step of the model under test (roofline.ModelCost)."""
    return model_cost(model)


@pytest.fixture
def benchmark_generation(benchmark, device_limits, model, tokenizer, npu_device, decoder_cost,
                         ascend_progress, request):
    """`benchmark_generation(prompts, max_new_tokens=, batch_size=)` -> (result, metrics),
    failing when the measurement contradicts itself or its roofline."""

    def run(prompts, *, max_new_tokens, batch_size=1):
        started = time.perf_counter()
        measurer = GenerationMeasurer(
            model, tokenizer, prompts, max_new_tokens=max_new_tokens, device=npu_device,
            batch_size=batch_size,
        )
        measurer.warm_up()
        benchmark.pedantic(measurer.run_once, rounds=PASSES * measurer.batches, iterations=1)
        result = measurer.result
        problems = consistency_problems(result, max_new_tokens)
        assert not problems, "; ".join(problems)
        metrics = {
            **result.summary().metrics(),
            **roofline_metrics(decoder_cost, device_limits, result.runs),
        }
        benchmark.extra_info.update(metrics)
        ascend_progress(generation_line(request.node.name, metrics, time.perf_counter() - started))
        # A fraction of a measured limit above 1 means the model's cost, the limit or the
        # timing is wrong (5% for the noise of two measurements); 0 means nothing was timed.
        for key in ("roofline_fraction", "prefill_roofline_fraction"):
            if key in metrics:
                assert 0 < metrics[key] <= 1.05, f"{key} {metrics[key]:.3f} is outside (0, 1.05]"
        return result, metrics

    yield run
    # Whatever the test left (a failed batch, an out-of-memory error) must not shrink the
    # memory the next test measures with.
    gc.collect()
    npu_device.empty_cache()

