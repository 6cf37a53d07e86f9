"""Memory figures that need more than one snapshot: a background sampler, and the growth of
a generation's KV cache against the config's arithmetic."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from pytest_ascend.periodic import PeriodicSampler


@dataclass(frozen=True)
class MemorySample:
    seconds: float  # since the sampler started
    allocated: int
    reserved: int


class MemorySampler(PeriodicSampler):
    """A background thread that snapshots the device's memory every `interval_s`.

    Peaks inside one forward (activations, the attention workspace) come and go between two
    calls from the test; a sampler sees them, and its series shows when memory grew. Use as
    a context manager, or `start()` / `stop()`.
    """

    thread_name = "pytest-ascend-memory"

    def __init__(self, device: Any, interval_s: float) -> None:
        super().__init__(interval_s)
        self.device = device
        self.samples: list[MemorySample] = []
        self.error: Optional[str] = None

    def stop(self) -> list[MemorySample]:  # type: ignore[override]
        super().stop()
        return self.samples

    @property
    def peak_allocated(self) -> int:
        return max((s.allocated for s in self.samples), default=0)

    def series(self) -> dict[str, Any]:
        """JSON-ready: columns of the samples, with the interval and the memory source."""
        return {
            "interval_s": self.interval_s,
            "source": self.device.memory_source,
            "seconds": [round(s.seconds, 4) for s in self.samples],
            "allocated": [s.allocated for s in self.samples],
            "reserved": [s.reserved for s in self.samples],
            "error": self.error,
        }

    def _sample(self) -> None:
        try:
            snap = self.device.memory()
        except Exception as exc:  # a sampler must never take the test down with it
            self.error = f"{type(exc).__name__}: {exc}"
            self._stopping.set()
            return
        self.samples.append(MemorySample(self.elapsed_s(), snap.allocated, snap.reserved))


# What a host's resident set may grow by beyond the cache tensors during a decode: the
# allocator's slack around a cache that grows by reallocation (a fraction of the cache), a
# few steps' transient buffers (logits over the vocabulary, MLP activations) that the heap
# keeps, and a fixed margin for the C library's arenas. An accelerator's allocated figure
# holds the cache alone, within KV_ALLOCATOR_TOLERANCE either way.
HOST_SLACK_FRACTION = 0.5
HOST_TRANSIENT_STEPS = 4
HOST_SLACK_BYTES = 16 << 20
HOST_RESIDENT_FLOOR = 0.75  # at least this much of the cache must be resident
KV_ALLOCATOR_TOLERANCE = 0.15


@dataclass(frozen=True)
class KvGrowth:
    """A generation's KV cache growth, against the config's arithmetic, two ways.

    `cache_bytes` is the cache tensors' own growth: exact on every device, so it must equal
    the arithmetic. `memory_bytes` is what the device's memory figure did meanwhile: the
    allocator's on an accelerator (the cache plus rounding), the process's resident set on a
    CPU (the cache plus what the heap keeps of each step's transient buffers).
    """

    new_tokens: int
    cache_bytes: int  # the cache tensors' bytes after decoding minus before
    memory_bytes: int  # allocated (process RSS on cpu) after decoding minus before
    expected_bytes: int  # kv_bytes_per_token x new_tokens
    source: str  # what memory_bytes is (the device's memory source)
    step_transient_bytes: int = 0  # one decode step's logits and MLP activations

    @property
    def ratio(self) -> float:
        """Memory growth over the arithmetic."""
        return self.memory_bytes / self.expected_bytes

    @property
    def excess_bytes(self) -> int:
        """Memory growth beyond the cache tensors' own."""
        return self.memory_bytes - self.cache_bytes

    def host_allowance_bytes(self) -> int:
        return int(HOST_SLACK_FRACTION * self.expected_bytes
                   + HOST_TRANSIENT_STEPS * self.step_transient_bytes + HOST_SLACK_BYTES)


def kv_growth_problem(growth: KvGrowth, *, allocator: bool) -> Optional[str]:
    """Why `growth` is wrong, or None. The cache tensors must match the arithmetic exactly
    everywhere. An allocator's figure must match it within KV_ALLOCATOR_TOLERANCE; a host's
    resident set must hold most of the cache and may exceed it only by its allowance, so a
    cache kept twice, or a buffer kept per step, fails on a CPU too."""
    mib = 1 << 20
    if growth.cache_bytes != growth.expected_bytes:
        return (f"the KV cache grew {growth.cache_bytes / mib:.2f} MiB over "
                f"{growth.new_tokens} tokens; the config says {growth.expected_bytes / mib:.2f} MiB")
    grew = (f"memory grew {growth.memory_bytes / mib:.1f} MiB over {growth.new_tokens} tokens "
            f"for a {growth.expected_bytes / mib:.2f} MiB KV cache ({growth.source})")
    if allocator:
        low, high = 1 - KV_ALLOCATOR_TOLERANCE, 1 + KV_ALLOCATOR_TOLERANCE
        if not low <= growth.ratio <= high:
            return f"{grew}; allowed {low:g}x to {high:g}x"
        return None
    if growth.ratio < HOST_RESIDENT_FLOOR:
        return f"{grew}; at least {HOST_RESIDENT_FLOOR:g}x must be resident"
    if growth.excess_bytes > growth.host_allowance_bytes():
        return (f"{grew}: {growth.excess_bytes / mib:.1f} MiB beyond the cache, allowed "
                f"{growth.host_allowance_bytes() / mib:.1f} MiB ({HOST_SLACK_FRACTION:g}x the "
                f"cache, {HOST_TRANSIENT_STEPS} steps' transient buffers and "
                f"{HOST_SLACK_BYTES // mib} MiB)")
    return None


def decode_steps_for(step_s: float, budget_s: float, *, least: int = 128,
                     most: int = 2048) -> int:
    """How many decode steps fit `budget_s` at `step_s` each, a multiple of 64 between
    `least` and `most`: 2048 steps take seconds on an accelerator and can take 18 minutes
    on a CPU with a 14B-shaped layer."""
    fitting = int(budget_s / step_s) if step_s > 0 else most
    return max(least, min(most, fitting // 64 * 64))


def step_transient_bytes(config: Any, element_bytes: int, batch: int = 1) -> int:
    """One decode step's short-lived buffers: the logits over the vocabulary (float32) and
    the MLP's activations."""
    from pytest_ascend.model.arithmetic import config_value

    vocab = int(config_value(config, "vocab_size"))
    intermediate = int(config_value(config, "intermediate_size"))
    return batch * (vocab * 4 + 3 * intermediate * element_bytes)


def measure_kv_growth(model: Any, prompt_ids: Any, new_tokens: int, device: Any) -> KvGrowth:
    """Prefill `prompt_ids`, then decode `new_tokens` greedily holding the cache, and compare
    what the cache tensors and the device's memory figure grew by with what the cache must
    take.

    Only the cache survives between the two snapshots (each step's logits are dropped), so
    on an accelerator's allocator the growth is the cache's growth. On a host, weights are
    memory-mapped and the input embedding is read a row per new token: it is made resident
    first, or a 152k-row vocabulary's first touches (tens of MiB) would count as KV.
    """
    import torch

    from pytest_ascend.model.arithmetic import kv_bytes_per_token
    from pytest_ascend.model.hf_compat import (
        cache_tensors,
        forward_kwargs,
        output_cache,
    )

    def cache_bytes(cache: Any) -> int:
        return sum(keys.nbytes + values.nbytes for keys, values in cache_tensors(cache))

    with torch.inference_mode():
        model.get_input_embeddings().weight.sum()  # every page of it resident
        out = model(input_ids=prompt_ids, **forward_kwargs(model))
        cache, token = output_cache(out), out.logits[:, -1:].argmax(dim=-1)
        del out
        device.synchronize()
        device.empty_cache()  # allocated is unaffected; a CPU's RSS sheds freed blocks
        before, cache_before = device.memory().allocated, cache_bytes(cache)
        for _ in range(new_tokens):
            out = model(input_ids=token, **forward_kwargs(model, cache))
            cache, token = output_cache(out), out.logits[:, -1:].argmax(dim=-1)
            del out
        device.synchronize()
        device.empty_cache()
        after, cache_after = device.memory().allocated, cache_bytes(cache)
    element = next(model.parameters()).element_size()
    return KvGrowth(new_tokens, cache_after - cache_before, after - before,
                    kv_bytes_per_token(model.config, element) * new_tokens, device.memory_source,
                    step_transient_bytes(model.config, element, int(prompt_ids.shape[0])))
