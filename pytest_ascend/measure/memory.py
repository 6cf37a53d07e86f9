"""Memory figures that need more than one snapshot: a background sampler, and the growth of
a generation's KV cache against the config's arithmetic."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Optional


@dataclass(frozen=True)
class MemorySample:
    seconds: float  # since the sampler started
    allocated: int
    reserved: int


class MemorySampler:
    """A background thread that snapshots the device's memory every `interval_s`.

    Peaks inside one forward (activations, the attention workspace) come and go between two
    calls from the test; a sampler sees them, and its series shows when memory grew. Use as
    a context manager, or `start()` / `stop()`.
    """

    def __init__(self, device: Any, interval_s: float) -> None:
        if interval_s <= 0:
            raise ValueError(f"sampling interval must be > 0 s, got {interval_s}")
        self.device = device
        self.interval_s = interval_s
        self.samples: list[MemorySample] = []
        self.error: Optional[str] = None
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._start = 0.0

    def start(self) -> "MemorySampler":
        self._start = time.perf_counter()
        self._thread = threading.Thread(target=self._run, name="pytest-ascend-memory",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> list[MemorySample]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()  # the state at the end, however short the run was
        return self.samples

    def __enter__(self) -> "MemorySampler":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

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

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval_s)

    def _sample(self) -> None:
        try:
            snap = self.device.memory()
        except Exception as exc:  # a sampler must never take the test down with it
            self.error = f"{type(exc).__name__}: {exc}"
            self._stop.set()
            return
        self.samples.append(MemorySample(time.perf_counter() - self._start, snap.allocated,
                                         snap.reserved))


@dataclass(frozen=True)
class KvGrowth:
    """Memory growth while a generation's KV cache grows, against the config's arithmetic."""

    new_tokens: int
    measured_bytes: int  # allocated (process RSS on cpu) after decoding minus before
    expected_bytes: int  # kv_bytes_per_token x new_tokens
    source: str

    @property
    def ratio(self) -> float:
        return self.measured_bytes / self.expected_bytes


def measure_kv_growth(model: Any, prompt_ids: Any, new_tokens: int, device: Any) -> KvGrowth:
    """Prefill `prompt_ids`, then decode `new_tokens` greedily holding the cache, and compare
    the memory the device holds before and after the decode with what the cache must take.

    Only the cache survives between the two snapshots (each step's logits are dropped), so
    on an accelerator's allocator the growth is the cache's growth.
    """
    import torch

    from pytest_ascend.model.arithmetic import kv_bytes_per_token
    from pytest_ascend.model.hf_compat import forward_kwargs, output_cache

    with torch.inference_mode():
        out = model(input_ids=prompt_ids, **forward_kwargs(model))
        cache, token = output_cache(out), out.logits[:, -1:].argmax(dim=-1)
        del out
        device.synchronize()
        device.empty_cache()  # allocated is unaffected; a CPU's RSS sheds freed blocks
        before = device.memory().allocated
        for _ in range(new_tokens):
            out = model(input_ids=token, **forward_kwargs(model, cache))
            cache, token = output_cache(out), out.logits[:, -1:].argmax(dim=-1)
            del out
        device.synchronize()
        device.empty_cache()
        after = device.memory().allocated
    element = next(model.parameters()).element_size()
    return KvGrowth(new_tokens, after - before, kv_bytes_per_token(model.config, element) * new_tokens,
                    device.memory_source)
