"""Roofline figures against arithmetic done by hand: a model's bytes and FLOPs from its
modules (a transformers Qwen2 built in memory, tied and untied), the fractions of the
measured limits, and the limits' own rate and report, on a scripted device clock."""

from contextlib import contextmanager
from types import SimpleNamespace

import pytest
import torch

from pytest_ascend.measure.roofline import (
    DeviceLimits,
    ModelCost,
    TimedKernel,
    copy_kernel,
    decode_roofline_fraction,
    limit_sizes,
    matmul_kernel,
    measure_device_limits,
    model_cost,
    prefill_roofline_fraction,
    roofline_metrics,
    roofline_rounds,
)
from pytest_ascend.platforms.base import DatasheetPeak
from pytest_ascend.platforms.cpu import CpuDevice
from pytest_ascend.platforms.device import Timing

SHEET = DatasheetPeak("Card X", 1000.0, {"float16": 200.0, "float32": None}, "vendor", True)


def limits(bandwidth=1e12, flops=1e14, datasheet=SHEET, dtype="float16"):
    return DeviceLimits("Card X", dtype, bandwidth, flops, 1 << 30, 8192, datasheet)


def test_limits_report_measured_and_datasheet_figures_side_by_side():
    report = limits(bandwidth=8e11, flops=1e14).report()
    assert report == {
        "dtype": "float16", "bandwidth_gb_s": 800.0, "matmul_tflops": 100.0,
        "copy_bytes": 1 << 30, "matmul_size": 8192,
        "datasheet": {"model": "Card X", "bandwidth_gb_s": 1000.0,
                      "tflops": {"float16": 200.0, "float32": None}, "source": "vendor",
                      "official": True, "link_gb_s": None},
        "bandwidth_vs_datasheet": 0.8, "matmul_vs_datasheet": 0.5}
    unlisted_dtype = limits(dtype="float32").report()
    assert unlisted_dtype["matmul_vs_datasheet"] is None
    assert unlisted_dtype["bandwidth_vs_datasheet"] == 1.0
    bare = limits(datasheet=None)
    assert bare.datasheet_bandwidth_bytes_per_s is None and bare.datasheet_flops_per_s is None
    assert bare.report()["datasheet"] is None and bare.report()["matmul_vs_datasheet"] is None


class ScriptedDevice(CpuDevice):
    """A CPU whose timer reads the next of `times` (ms) instead of a clock."""

    def __init__(self, times):
        super().__init__()
        self.times = iter(times)
        self.synchronized = 0

    @contextmanager
    def timer(self):
        timing = Timing()
        yield timing
        timing.elapsed_ms = next(self.times)

    def synchronize(self):
        self.synchronized += 1


def test_a_kernel_rate_is_its_work_over_its_fastest_call():
    calls = []
    device = ScriptedDevice([4.0, 0.5, 2.0])
    kernel = TimedKernel(device, lambda: calls.append(1), work=1e6)
    kernel.warm_up(calls=2)
    assert len(calls) == 2 and device.synchronized == 1 and kernel.times_ms == []
    assert [kernel.run_once() for _ in range(3)] == [4.0, 0.5, 2.0]
    assert len(calls) == 5 and kernel.times_ms == [4.0, 0.5, 2.0]
    assert kernel.rate() == pytest.approx(1e6 / 0.5e-3)
    TimedKernel(device, lambda: calls.append(1), work=1.0).warm_up()
    assert len(calls) == 8


def test_a_kernel_can_be_timed_by_another_timer():
    device = ScriptedDevice([])
    other = ScriptedDevice([3.0])
    kernel = TimedKernel(device, lambda: None, work=3.0, timer=other.timer)
    assert kernel.run_once() == 3.0 and kernel.rate() == pytest.approx(1000.0)


class MetaDevice(CpuDevice):
    """A CPU whose tensors go to torch's "meta" device: where a kernel puts its buffers."""

    def __init__(self):
        super().__init__()
        self.torch_device = torch.device("meta")


def test_copy_and_matmul_kernels_do_the_work_they_claim():
    copy = copy_kernel(CpuDevice(), 4096)
    assert copy.work == 2 * 4096
    copied = copy.operation()
    assert copied.shape == (1024,) and copied.dtype == torch.float32
    assert 0.0 <= float(copied.min()) and float(copied.max()) < 1.0 and float(copied.sum()) > 0
    assert copy_kernel(MetaDevice(), 4096).operation().device.type == "meta"
    matmul = matmul_kernel(CpuDevice(), "float32", 8)
    assert matmul.work == 2 * 8 ** 3
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(8, 8, generator=gen), torch.randn(8, 8, generator=gen)
    torch.testing.assert_close(matmul.operation(), a @ b)
    assert matmul_kernel(CpuDevice(), "bfloat16", 8).operation().dtype == torch.bfloat16
    assert matmul_kernel(MetaDevice(), "float32", 8).operation().device.type == "meta"


def test_copy_buffers_are_float32_whatever_the_default_dtype():
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        assert copy_kernel(CpuDevice(), 4096).operation().dtype == torch.float32
    finally:
        torch.set_default_dtype(default)


def test_a_sharded_tensor_counts_its_local_part():
    from pytest_ascend.measure.roofline import _local

    local = torch.zeros(3)
    shard = SimpleNamespace(to_local=lambda: local)
    assert _local(shard) is local and _local(local) is local


def test_cpu_limits_are_measured_at_cpu_sizes():
    assert limit_sizes(CpuDevice(), "float32") == (256 << 20, 1024)
    assert limit_sizes(CpuDevice(), "float16") == (256 << 20, 256)
    def card(free):
        return SimpleNamespace(platform=SimpleNamespace(has_device_memory=True),
                               memory=lambda: SimpleNamespace(free=free))

    assert limit_sizes(card(4 << 30), "float16") == (512 << 20, 8192)
    copy_bytes, _ = limit_sizes(card((4 << 30) + 7), "float16")
    assert copy_bytes == 512 << 20 and isinstance(copy_bytes, int)
    assert limit_sizes(card(64 << 30), "bfloat16") == (1 << 30, 8192)
    assert limit_sizes(card(None), "float16") == (1 << 30, 8192)


def test_measured_limits_come_from_the_fastest_of_the_repeats(monkeypatch):
    from pytest_ascend.measure import roofline

    asked = []

    def sizes(device, dtype):
        asked.append((device, dtype))
        return 1 << 20, 64

    monkeypatch.setattr(roofline, "limit_sizes", sizes)
    emptied = []
    device = ScriptedDevice([2.0, 1.0, 4.0, 8.0, 16.0, 4.0])
    device.empty_cache = lambda: emptied.append(True)
    device.platform = SimpleNamespace(datasheet=lambda name: SHEET if name == device.name
                                      else None)
    measured = measure_device_limits(device, "float32", repeats=3)
    assert asked == [(device, "float32")]
    assert measured.bandwidth_bytes_per_s == pytest.approx(2 * (1 << 20) / 1e-3)
    assert measured.matmul_flops_per_s == pytest.approx(2 * 64 ** 3 / 4e-3)
    assert (measured.copy_bytes, measured.matmul_size, measured.dtype) == (1 << 20, 64, "float32")
    assert measured.device_name == device.name and measured.datasheet is SHEET
    assert emptied == [True]
    ten_each = ScriptedDevice([1.0] * 20)
    ten_each.empty_cache = lambda: None
    measure_device_limits(ten_each, "float32")
    assert next(ten_each.times, None) is None  # ten timed calls per limit by default


def qwen(tied):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(vocab_size=64, hidden_size=16, intermediate_size=32,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         tie_word_embeddings=tied, max_position_embeddings=64)
    return Qwen2ForCausalLM(config)


@pytest.mark.parametrize("tied", [True, False])
def test_model_cost_from_the_modules(tied):
    model = qwen(tied)
    cost = model_cost(model)
    all_bytes = sum(p.numel() * 4 for p in model.parameters())
    embedding = 64 * 16
    assert cost.weight_bytes_per_step == all_bytes - (0 if tied else embedding * 4)
    # per layer: q 16x16, k and v 16x8 each, o 16x16, gate and up 16x32, down 32x16
    per_layer = 256 + 128 + 128 + 256 + 3 * 512
    assert cost.linear_params == 2 * per_layer + embedding and cost.vocab_params == embedding
    assert cost.kv_bytes_per_token == 2 * 2 * 2 * 4 * 4  # K+V, layers, kv heads, dim, fp32
    assert cost.attention_width == 2 * 4 * 4


def test_a_vocabulary_head_that_is_not_a_linear_layer_still_counts():
    class Head(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(64, 16))

    model = qwen(False)
    model.lm_head = Head()
    per_layer = 256 + 128 + 128 + 256 + 3 * 512
    assert model_cost(model).linear_params == 2 * per_layer + 64 * 16


def test_a_split_model_counts_its_shard_of_the_kv_heads():
    assert model_cost(qwen(False), tp_size=2).kv_bytes_per_token == 2 * 2 * 1 * 4 * 4


COST = ModelCost(weight_bytes_per_step=1000, kv_bytes_per_token=10, linear_params=300,
                 vocab_params=100, attention_width=8)


def test_decode_bytes_and_prefill_flops_by_hand():
    assert COST.decode_bytes(batch_size=2, context=5) == 1000 + 10 * 2 * 5
    # projections 2 x 200 x 6 tokens, vocabulary 2 x 100 x 2 rows, attention 2 x 8 x 2 x 3^2
    assert COST.prefill_flops(batch_size=2, prompt_len=3) == 2400 + 400 + 288


def run(ttft_ms, itl_ms, batch_size=1, context_tokens=4):
    return SimpleNamespace(batch_size=batch_size, context_tokens=context_tokens,
                           ttft_ms=ttft_ms, itl_ms=itl_ms, decode_ms=sum(itl_ms))


def test_decode_fraction_is_bytes_bound_time_over_measured_time():
    """Steps 1 and 2 read 1000 + 10 x 1 x 5 and 1000 + 10 x 1 x 6 bytes: 2110 bytes at
    1e6 B/s is 2.11 ms, measured 4 ms."""
    assert decode_roofline_fraction(COST, limits(bandwidth=1e6), run(1.0, [1.0, 3.0])) == \
        pytest.approx(2.11 / 4.0)


def test_prefill_fraction_is_achieved_flops_over_the_matmul_rate():
    flops = COST.prefill_flops(2, 4)
    assert prefill_roofline_fraction(COST, limits(flops=1e9), run(2.0, [], 2)) == \
        pytest.approx(flops / 2e-3 / 1e9)


def test_roofline_rounds_and_their_medians():
    lim = limits(bandwidth=1e6, flops=1e9)
    runs = [run(1.0, [1.0, 3.0]), run(2.0, [2.0, 2.0]), run(4.0, [4.0, 4.0])]
    rounds = roofline_rounds(COST, lim, runs)
    assert rounds["prefill_roofline_fraction"] == pytest.approx(
        [prefill_roofline_fraction(COST, lim, r) for r in runs])
    assert rounds["prefill_tflops"] == pytest.approx(
        [COST.prefill_flops(1, 4) / (r.ttft_ms / 1e3) / 1e12 for r in runs], rel=1e-12, abs=0)
    decode = [decode_roofline_fraction(COST, lim, r) for r in runs]
    assert rounds["roofline_fraction"] == pytest.approx(decode)
    assert rounds["decode_bandwidth_gb_s"] == pytest.approx([d * 1e6 / 1e9 for d in decode],
                                                            rel=1e-12, abs=0)
    medians = roofline_metrics(COST, lim, runs)
    assert medians["roofline_fraction"] == pytest.approx(decode[1])  # 4 ms twice, 8 ms
    assert medians["prefill_tflops"] == pytest.approx(rounds["prefill_tflops"][1])


def test_a_prefill_alone_has_no_decode_figures():
    rounds = roofline_rounds(COST, limits(), [run(1.0, [])])
    assert set(rounds) == {"prefill_roofline_fraction", "prefill_tflops"}
