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


@dataclass(frozen=True)
class KvGrowth:
    """A generation's KV cache growth, against the config's arithmetic, two ways.

    `cache_bytes` is the cache tensors' own growth: exact on every device, so it must equal
    the arithmetic. `memory_bytes` is what the device's memory figure did meanwhile: the
    allocator's on an accelerator (the cache plus rounding), the process's resident set on a
    CPU (the cache plus whatever transient buffers the heap keeps: a large vocabulary's
    logits and matmul workspaces can dwarf a small cache there).
    """

    new_tokens: int
    cache_bytes: int  # the cache tensors' bytes after decoding minus before
    memory_bytes: int  # allocated (process RSS on cpu) after decoding minus before
    expected_bytes: int  # kv_bytes_per_token x new_tokens
    source: str  # what memory_bytes is (the device's memory source)

    @property
    def ratio(self) -> float:
        """Memory growth over the arithmetic."""
        return self.memory_bytes / self.expected_bytes


def measure_kv_growth(model: Any, prompt_ids: Any, new_tokens: int, device: Any) -> KvGrowth:
    """Prefill `prompt_ids`, then decode `new_tokens` greedily holding the cache, and compare
    what the cache tensors and the device's memory figure grew by with what the cache must
    take.

    Only the cache survives between the two snapshots (each step's logits are dropped), so
    on an accelerator's allocator the growth is the cache's growth.
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
                    kv_bytes_per_token(model.config, element) * new_tokens, device.memory_source)
