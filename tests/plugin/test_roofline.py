"""Roofline figures: the model's bytes and FLOPs checked against independent counts, the
fractions against hand arithmetic, and datasheet lookup by the names devices report."""

from contextlib import contextmanager

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from pytest_ascend.measure.generation import BatchRun
from pytest_ascend.measure.roofline import (
    DeviceLimits,
    TimedKernel,
    decode_roofline_fraction,
    measure_device_limits,
    model_cost,
    prefill_roofline_fraction,
)
from pytest_ascend.model.hf_compat import cache_tensors, forward_kwargs, output_cache
from pytest_ascend.platforms import get_platform
from pytest_ascend.platforms.cpu import CpuDevice
from pytest_ascend.platforms.device import Timing


def test_kv_bytes_per_token_match_the_cache_the_model_builds(tiny):
    cost = model_cost(tiny.model)
    ids = torch.randint(3, 3000, (2, 17))
    with torch.inference_mode():
        cache = output_cache(tiny.model(input_ids=ids, **forward_kwargs(tiny.model)))
    held = sum(keys.nbytes + values.nbytes for keys, values in cache_tensors(cache))
    assert cost.kv_bytes_per_token == held / (2 * 17)


def test_weight_bytes_and_linear_params_from_the_config(tiny):
    c = tiny.model.config
    head_dim = c.hidden_size // c.num_attention_heads
    per_layer = (c.hidden_size * head_dim * (2 * c.num_attention_heads + 2 * c.num_key_value_heads)
                 + 3 * c.hidden_size * c.intermediate_size)
    vocab = c.vocab_size * c.hidden_size
    cost = model_cost(tiny.model)
    assert cost.linear_params == c.num_hidden_layers * per_layer + vocab
    assert cost.vocab_params == vocab
    assert not c.tie_word_embeddings  # so the embedding table is not read by a decode step
    assert cost.weight_bytes_per_step == tiny.weight_bytes - vocab * 4


def test_prefill_projection_flops_match_torch_flop_counter(tiny):
    """FlopCounterMode counts the matmuls the decoder's forward actually ran (attention
    aside, whose causal half the cost model counts on its own; the vocabulary projection
    aside, which transformers releases run as different ops)."""
    cost = model_cost(tiny.model)
    batch, length = 2, 40
    ids = torch.randint(3, 3000, (batch, length))
    # no_grad, not inference_mode: under inference_mode torch 2.1's FlopCounterMode sees no op
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        tiny.model.model(input_ids=ids, use_cache=False)  # the decoder, without lm_head
    counts = counter.get_flop_counts()["Global"]
    linear = sum(v for k, v in counts.items() if str(k) in ("aten.mm", "aten.addmm"))
    assert linear == 2 * (cost.linear_params - cost.vocab_params) * batch * length
    attention = 2 * cost.attention_width * batch * length**2
    vocabulary = 2 * cost.vocab_params * batch
    assert cost.prefill_flops(batch, length) == linear + vocabulary + attention


def _limits(bandwidth=1e9, flops=1e12):
    return DeviceLimits("test", "float32", bandwidth, flops, 1, 1, None)


def test_decode_fraction_is_bytes_bound_time_over_measured_time(tiny):
    cost = model_cost(tiny.model)
    run = BatchRun(0, (0, 1), (5, 7), 7, ttft_ms=1.0, itl_ms=(2.0, 2.0, 2.0), e2e_ms=8.0,
                   tokens=((1,) * 4,) * 2)
    steps_bytes = sum(cost.weight_bytes_per_step + cost.kv_bytes_per_token * 2 * (7 + i)
                      for i in (1, 2, 3))
    assert decode_roofline_fraction(cost, _limits(), run) == pytest.approx(
        (steps_bytes / 1e9) / 0.006)
    assert prefill_roofline_fraction(cost, _limits(), run) == pytest.approx(
        cost.prefill_flops(2, 7) / 0.001 / 1e12)


@pytest.mark.parametrize("kind, name, model", [
    ("cuda", "NVIDIA H100 80GB HBM3", "H100 SXM5"),
    ("cuda", "NVIDIA H100 PCIe", "H100 PCIe"),
    ("cuda", "NVIDIA H100 NVL", "H100 NVL"),
    ("cuda", "NVIDIA H200", "H200 SXM"),
    ("cuda", "NVIDIA H200 NVL", "H200 NVL"),
    ("npu", "Ascend910B2", "Ascend 910B1/B2"),
    ("npu", "Ascend910B3", "Ascend 910B3"),
    ("npu", "Ascend910B4", "Ascend 910B4"),
    ("npu", "Ascend910A", "Ascend 910A"),
    ("npu", "Ascend910ProA", "Ascend 910A"),
])
def test_datasheet_lookup_by_reported_device_name(kind, name, model):
    assert get_platform(kind).datasheet(name).model == model


def test_unknown_devices_have_no_datasheet_and_only_nvidia_figures_are_official():
    assert get_platform("cpu").datasheet("Intel(R) Xeon(R) Processor") is None
    assert get_platform("cuda").datasheet("Ascend910B1") is None
    assert get_platform("cuda").datasheet("NVIDIA H100 80GB HBM3").official
    assert not get_platform("npu").datasheet("Ascend910B1").official


class StepClockDevice(CpuDevice):
    def __init__(self, times):
        super().__init__()
        self.times = iter(times)

    @contextmanager
    def timer(self):
        timing = Timing()
        yield timing
        timing.elapsed_ms = next(self.times)


def test_timed_kernel_rate_is_work_over_the_fastest_device_time():
    kernel = TimedKernel(StepClockDevice([4.0, 1.0, 2.0]), lambda: None, work=10.0)
    for _ in range(3):
        kernel.run_once()
    assert kernel.rate() == pytest.approx(10.0 / 0.001)


def test_measured_cpu_limits_are_positive_and_reported(tiny):
    limits = measure_device_limits(CpuDevice(), "float32", repeats=3)
    report = limits.report()
    assert report["bandwidth_gb_s"] > 0 and report["matmul_tflops"] > 0
    assert report["datasheet"] is None and report["bandwidth_vs_datasheet"] is None
