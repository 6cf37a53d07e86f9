"""Memory figures that need more than one snapshot: KV sizing, growth over a generation,
a background sampler, and the CPU footprint of loading a checkpoint.

On a CPU there is no allocator to ask how much the weights take, only the process's resident
set, and inside a long-lived session that figure mixes the weights with whatever the process
freed and reused or imported lazily on the first load. So the CPU footprint of loading a
checkpoint is measured in a fresh interpreter: import everything and build the model class on
the meta device first (lazy imports happen there, not inside the measured window), then load,
touch every parameter (safetensors maps weights lazily; untouched pages are not resident),
and report the growth of the resident set.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional


def kv_bytes_per_token(config: Any, dtype_bytes: int) -> int:
    """KV-cache bytes one position takes in one sequence: K and V, every layer, every KV
    head. Qwen2.5-14B in float16: 2 x 48 x 8 x 128 x 2 = 192 KiB."""
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    return 2 * config.num_hidden_layers * kv_heads * head_dim * dtype_bytes


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

    def __init__(self, device: Any, interval_s: float = 0.05) -> None:
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


def cpu_load_footprint(path: Path, dtype: str, trust_remote_code: bool = False) -> int:
    """Bytes the process's resident set grows by when loading `path` in `dtype` on the CPU."""
    cmd = [sys.executable, "-m", "pytest_ascend.measure.memory", str(path), dtype]
    if trust_remote_code:
        cmd.append("--trust-remote-code")
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"measuring the CPU load footprint of {path} failed: {tail}")
    return int(json.loads(done.stdout.strip().splitlines()[-1])["rss_growth"])


def _measure_in_this_process(path: str, dtype: str, trust_remote_code: bool) -> int:
    import gc

    import psutil
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from pytest_ascend.model.hf_compat import DTYPE_KWARG, TORCH_DTYPES, quiet_progress_bars

    config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    with torch.device("meta"):
        AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)
    torch.ones(8).sum()  # start the CPU runtime's thread pool outside the window
    gc.collect()
    process = psutil.Process()
    before = process.memory_info().rss
    with quiet_progress_bars():
        model = AutoModelForCausalLM.from_pretrained(
            path, trust_remote_code=trust_remote_code, **{DTYPE_KWARG: TORCH_DTYPES[dtype]}
        )
    with torch.no_grad():
        for param in model.parameters():
            param.sum()
    return process.memory_info().rss - before


if __name__ == "__main__":
    growth = _measure_in_this_process(sys.argv[1], sys.argv[2], "--trust-remote-code" in sys.argv)
    print(json.dumps({"rss_growth": growth}))


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
