"""How far a measured generation is from what the hardware allows.

Decode reads every weight and the whole KV cache once per step, so its floor is bytes /
bandwidth; prefill is dense matrix multiplication, so its floor is FLOPs / matmul rate. Both
limits are *measured* once per session on the device under test (a large device-to-device
copy; a large matmul in the model's dtype) rather than taken from a datasheet: the Ascend
figures in circulation are not from one, and a fraction of a number nobody measured says
nothing. The platform's datasheet figures, where it knows any, are reported next to the
measured ones as a sanity check of the measurement itself.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable, ContextManager, Optional

import torch

from pytest_ascend.measure.stats import median
from pytest_ascend.model.arithmetic import attention_heads, head_dim, kv_bytes_per_card
from pytest_ascend.model.hf_compat import TORCH_DTYPES
from pytest_ascend.platforms.base import DatasheetPeak


@dataclass(frozen=True)
class DeviceLimits:
    """The device's measured copy bandwidth and matmul rate, and the datasheet's, if known."""

    device_name: str
    dtype: str
    bandwidth_bytes_per_s: float  # (bytes read + bytes written) / fastest large copy
    matmul_flops_per_s: float  # 2 n^3 / fastest n x n matmul in `dtype`
    copy_bytes: int
    matmul_size: int
    datasheet: Optional[DatasheetPeak]

    @property
    def datasheet_bandwidth_bytes_per_s(self) -> Optional[float]:
        return None if self.datasheet is None else self.datasheet.bandwidth_gb_s * 1e9

    @property
    def datasheet_flops_per_s(self) -> Optional[float]:
        tflops = None if self.datasheet is None else self.datasheet.tflops.get(self.dtype)
        return None if tflops is None else tflops * 1e12

    def report(self) -> dict[str, Any]:
        """JSON-ready: measured and datasheet figures side by side, in GB/s and TFLOP/s."""
        bw_sheet, flops_sheet = self.datasheet_bandwidth_bytes_per_s, self.datasheet_flops_per_s
        return {
            "dtype": self.dtype,
            "bandwidth_gb_s": self.bandwidth_bytes_per_s / 1e9,
            "matmul_tflops": self.matmul_flops_per_s / 1e12,
            "copy_bytes": self.copy_bytes,
            "matmul_size": self.matmul_size,
            "datasheet": None if self.datasheet is None else asdict(self.datasheet),
            "bandwidth_vs_datasheet": None if bw_sheet is None
            else self.bandwidth_bytes_per_s / bw_sheet,
            "matmul_vs_datasheet": None if flops_sheet is None
            else self.matmul_flops_per_s / flops_sheet,
        }


class TimedKernel:
    """One device operation that does known work, timed per call on the device.

    `run_once()` is what a benchmark round calls; `rate()` is work per second of the fastest
    call so far. A limit is what the device *can* do: other work on the machine only ever
    slows a call down, so the fastest call is the estimate least disturbed by it (STREAM
    reports the best of its repetitions for the same reason), and a fraction of it never
    flatters the model.
    """

    def __init__(self, device: Any, operation: Callable[[], Any], work: float,
                 timer: Optional[Callable[[], ContextManager[Any]]] = None) -> None:
        self.device = device
        self.operation = operation
        self.work = work
        self.timer = device.timer if timer is None else timer  # another: a transfer's
        self.times_ms: list[float] = []

    def warm_up(self, calls: int = 3) -> None:
        """First calls pay for page faults, allocator growth, kernel selection and (on a
        CPU) the thread pool spinning up."""
        for _ in range(calls):
            self.operation()
        self.device.synchronize()

    def run_once(self) -> float:
        with self.timer() as t:
            self.operation()
        self.times_ms.append(t.elapsed_ms)
        return t.elapsed_ms

    def rate(self) -> float:
        return self.work / (min(self.times_ms) / 1e3)


def copy_kernel(device: Any, nbytes: int) -> TimedKernel:
    """`dst.copy_(src)` of `nbytes`; its work is bytes read + bytes written (2 * nbytes).

    The buffers should be far larger than any cache, so the rate is memory bandwidth.
    """
    src = torch.empty(nbytes // 4, dtype=torch.float32, device=device.torch_device).uniform_()
    dst = torch.empty_like(src)
    return TimedKernel(device, lambda: dst.copy_(src), 2 * src.numel() * src.element_size())


def matmul_kernel(device: Any, dtype: str, size: int) -> TimedKernel:
    """An n x n by n x n matmul in `dtype`; its work is 2 n^3 FLOPs."""
    gen = torch.Generator(device="cpu").manual_seed(0)
    a, b = (
        torch.randn(size, size, generator=gen).to(device.torch_device, TORCH_DTYPES[dtype])
        for _ in range(2)
    )
    return TimedKernel(device, lambda: torch.matmul(a, b), 2 * size**3)


def measure_device_limits(device: Any, dtype: str, repeats: int = 10) -> DeviceLimits:
    """Measure both limits with sizes fitted to the device (see `limit_sizes`)."""
    copy_bytes, matmul_size = limit_sizes(device, dtype)
    with torch.inference_mode():
        bandwidth = _steady_rate(copy_kernel(device, copy_bytes), repeats)
        flops = _steady_rate(matmul_kernel(device, dtype, matmul_size), repeats)
    device.empty_cache()  # the kernels' buffers are gone: hand their memory back
    return DeviceLimits(
        device_name=device.name, dtype=dtype, bandwidth_bytes_per_s=bandwidth,
        matmul_flops_per_s=flops, copy_bytes=copy_bytes, matmul_size=matmul_size,
        datasheet=device.platform.datasheet(device.name),
    )


def _steady_rate(kernel: TimedKernel, repeats: int) -> float:
    kernel.warm_up()
    for _ in range(repeats):
        kernel.run_once()
    return kernel.rate()


def limit_sizes(device: Any, dtype: str) -> tuple[int, int]:
    """Copy bytes and matmul size: large enough to reach the device's steady rate.

    Accelerators: 1 GiB copies (far beyond any on-chip cache; capped at 1/8 of free memory)
    and 8192^3 matmuls (~1 ms at 1 PFLOP/s). CPU: 256 MiB copies (beyond any L3) and a
    matmul sized to take tens of milliseconds (float16 on a CPU is emulated and ~100x
    slower than float32).
    """
    if device.platform.has_device_memory:
        free = device.memory().free
        copy_bytes = 1 << 30 if free is None else min(1 << 30, free // 8)
        return copy_bytes, 8192
    return 256 << 20, 1024 if dtype == "float32" else 256


@dataclass(frozen=True)
class ModelCost:
    """What one forward of a decoder-only model reads and computes, from its modules."""

    weight_bytes_per_step: int  # every weight a decode step reads (not the embedding table)
    kv_bytes_per_token: int  # K and V of one position, all layers, one sequence (this card's)
    linear_params: int  # weights of all matmul layers, the vocabulary projection included
    vocab_params: int  # the vocabulary projection's weights alone
    attention_width: int  # layers * attention heads * head dim

    def decode_bytes(self, batch_size: int, context: int) -> int:
        """Bytes one decode step reads with `context` positions in each sequence's cache."""
        return self.weight_bytes_per_step + self.kv_bytes_per_token * batch_size * context

    def prefill_flops(self, batch_size: int, prompt_len: int) -> float:
        """Matmul FLOPs of a prefill that keeps the logits of the last position only:
        2 per weight per token in the projections, 2 per vocabulary weight per sequence, and
        causal attention's QK^T and AV (2 * 2 * s^2 * width, halved by the causal mask)."""
        tokens = batch_size * prompt_len
        projections = 2 * (self.linear_params - self.vocab_params) * tokens
        vocabulary = 2 * self.vocab_params * batch_size
        attention = 2 * self.attention_width * batch_size * prompt_len**2
        return float(projections + vocabulary + attention)


def model_cost(model: Any, tp_size: int = 1) -> ModelCost:
    """Read the cost figures off a loaded transformers causal LM: of the whole model, or of
    one rank's share of a model split `tp_size` ways (the local shard of each split weight,
    the whole of each replicated one, its share of the KV heads)."""
    config = model.config
    params = [_local(p) for p in model.parameters()]
    element = params[0].element_size()
    embedding = _local(model.get_input_embeddings().weight)
    head = _local(model.get_output_embeddings().weight)
    tied = embedding.data_ptr() == head.data_ptr()
    total_bytes = sum(p.numel() * p.element_size() for p in params)
    untied_embedding = 0 if tied else embedding.numel() * embedding.element_size()
    linear = sum(_local(m.weight).numel() for m in model.modules()
                 if isinstance(m, torch.nn.Linear))
    if not isinstance(model.get_output_embeddings(), torch.nn.Linear):
        linear += head.numel()
    return ModelCost(
        weight_bytes_per_step=total_bytes - untied_embedding,
        kv_bytes_per_token=kv_bytes_per_card(config, element, tp_size),
        linear_params=linear,
        vocab_params=head.numel(),
        attention_width=config.num_hidden_layers * attention_heads(config) * head_dim(config),
    )


def _local(tensor: Any) -> Any:
    """This rank's part of a tensor split across ranks (a DTensor), or the tensor itself."""
    return tensor.to_local() if hasattr(tensor, "to_local") else tensor


def decode_roofline_fraction(cost: ModelCost, limits: DeviceLimits, run: Any) -> float:
    """Bytes-bound time of a run's decode steps over their measured time (1.0 = at the limit).

    Step i (1-based) attends over the padded prompt plus i generated positions.
    """
    ideal_s = sum(
        cost.decode_bytes(run.batch_size, run.context_tokens + step)
        for step in range(1, len(run.itl_ms) + 1)
    ) / limits.bandwidth_bytes_per_s
    return ideal_s / (run.decode_ms / 1e3)


def prefill_roofline_fraction(cost: ModelCost, limits: DeviceLimits, run: Any) -> float:
    """Achieved prefill FLOP/s (over the padded batch) as a fraction of the measured matmul rate."""
    achieved = cost.prefill_flops(run.batch_size, run.context_tokens) / (run.ttft_ms / 1e3)
    return achieved / limits.matmul_flops_per_s


def roofline_rounds(cost: ModelCost, limits: DeviceLimits, runs: list) -> dict[str, list]:
    """Each run's roofline figures, under the names benchmark extra_info uses."""
    out = {
        "prefill_roofline_fraction": [prefill_roofline_fraction(cost, limits, r) for r in runs],
        "prefill_tflops": [cost.prefill_flops(r.batch_size, r.context_tokens) / r.ttft_ms / 1e9
                           for r in runs],
    }
    decode = [decode_roofline_fraction(cost, limits, r) for r in runs if r.itl_ms]
    if decode:
        out["roofline_fraction"] = decode
        out["decode_bandwidth_gb_s"] = [d * limits.bandwidth_bytes_per_s / 1e9 for d in decode]
    return out


def roofline_metrics(cost: ModelCost, limits: DeviceLimits, runs: list) -> dict[str, float]:
    """Medians over runs of `roofline_rounds`."""
    return {name: median(values) for name, values in roofline_rounds(cost, limits, runs).items()}
