"""The perf suite's one way of benchmarking a generation workload.

Every perf test goes through `benchmark_generation`, so every benchmark is recorded alike:
the warm-up outside the timed rounds, one pytest-benchmark round per measured batch (the
device synchronized inside it), the metrics in `benchmark.extra_info` (and from there in the
JSON report) with every run's own figures under `rounds` (what the history judges noise by),
and one progress line per configuration. A ratio against another configuration is measured
interleaved: a pass of the baseline, then a pass of the candidate, round after round.
"""

import gc
import time

import pytest

from pytest_ascend.measure.generation import GenerationMeasurer, consistency_problems
from pytest_ascend.measure.interleave import round_ratios
from pytest_ascend.measure.roofline import model_cost, roofline_metrics, roofline_rounds
from pytest_ascend.reports.progress import generation_line

# Measured passes over a workload's prompts: P50 is the headline, P95/P99 come mostly from
# the decode steps (hundreds per pass); more passes lengthen a real-model run linearly.
PASSES = 3
# Rounds of an interleaved ratio: the median interval of 5 rounds is (min, max), covering
# the median with 94% (measure.interleave.median_interval).
INTERLEAVED_PASSES = 5


@pytest.fixture(scope="session")
def decoder_cost(model):
    """Bytes and FLOPs per step of the model under test (roofline.ModelCost)."""
    return model_cost(model)


@pytest.fixture
def benchmark_generation(benchmark, device_limits, model, tokenizer, npu_device, decoder_cost,
                         ascend_progress, request):
    """`benchmark_generation(prompts, max_new_tokens=, batch_size=, against_batch_size=None)`
    -> (result, metrics, ratio). With `against_batch_size`, the same prompts at that batch
    size alternate pass by pass with the measured ones, and `ratio` holds the per-pass
    throughput ratios (measured over baseline); else it is None. Fails when a measurement
    contradicts itself or its roofline."""

    def measurer(prompts, max_new_tokens, batch_size):
        made = GenerationMeasurer(model, tokenizer, prompts, max_new_tokens=max_new_tokens,
                                  device=npu_device, batch_size=batch_size)
        made.warm_up()
        return made

    def one_pass(made):
        for _ in range(made.batches):
            made.run_once()

    def run(prompts, *, max_new_tokens, batch_size=1, against_batch_size=None):
        started = time.perf_counter()
        measured = measurer(prompts, max_new_tokens, batch_size)
        baseline = ratio = None
        if against_batch_size is None:
            benchmark.pedantic(measured.run_once, rounds=PASSES * measured.batches,
                               iterations=1)
        else:
            baseline = measurer(prompts, max_new_tokens, against_batch_size)
            benchmark.pedantic(one_pass, args=(measured,), setup=lambda: one_pass(baseline),
                               rounds=INTERLEAVED_PASSES, iterations=1)
            ratio = round_ratios(measured.result.pass_throughputs(measured.batches),
                                 baseline.result.pass_throughputs(baseline.batches))
        result = measured.result
        problems = consistency_problems(result, max_new_tokens)
        if baseline is not None:
            problems += consistency_problems(baseline.result, max_new_tokens)
        assert not problems, "; ".join(problems)
        metrics = {
            **result.summary().metrics(),
            **roofline_metrics(decoder_cost, device_limits, result.runs),
        }
        rounds = {**result.round_figures(),
                  **roofline_rounds(decoder_cost, device_limits, result.runs)}
        benchmark.extra_info.update(metrics, rounds=rounds)
        ascend_progress(generation_line(request.node.name, metrics, time.perf_counter() - started))
        # A fraction of a measured limit above 1 means the model's cost, the limit or the
        # timing is wrong (5% for the noise of two measurements); 0 means nothing was timed.
        for key in ("roofline_fraction", "prefill_roofline_fraction"):
            if key in metrics:
                assert 0 < metrics[key] <= 1.05, f"{key} {metrics[key]:.3f} is outside (0, 1.05]"
        return result, metrics, ratio

    yield run
    # Whatever the test left (a failed batch, an out-of-memory error) must not shrink the
    # memory the next test measures with.
    gc.collect()
    npu_device.empty_cache()
