"""The host CPU as a platform: always present, float32 by default (float16 is emulated there
and ~100x slower), gloo for collectives, SGLang's CPU engine, and process-level memory
figures. Timing is the host clock: CPU tensor ops complete before they return."""

from __future__ import annotations

import ctypes
import gc
import time
from contextlib import contextmanager
from types import MappingProxyType
from typing import Any, Iterator, Optional

import psutil
import torch

from pytest_ascend.platforms.base import Platform, card_label
from pytest_ascend.platforms.device import DeviceUnderTest, MemorySnapshot, Timing
from pytest_ascend.platforms.facts import cpu_model_name


class CpuPlatform(Platform):
    kind = "cpu"
    auto_priority = 1000  # the fall-back when no accelerator stack is installed
    has_device_memory = False  # the process's resident set is the only figure
    one_rank_per_card = False  # torchrun ranks share the host
    is_host = True
    host_stand_ins = True  # --ascend-devices=2: two stand-in cards sharing the host
    default_dtype = "float32"
    distributed_backend = "gloo"
    sglang_flags = ("--device", "cpu", "--attention-backend", "torch_native")
    # SGLang's CPU path is selected by this variable; without it the launcher looks for CUDA.
    sglang_env = MappingProxyType({"SGLANG_USE_CPU_ENGINE": "1"})
    # SGLang sizes a CPU KV pool from host memory; 4096 tokens are plenty for the suite and
    # keep the server at ~2 GB.
    sglang_server_defaults = (("--max-total-tokens", "4096"),)

    def present(self) -> bool:
        return True

    def float16_matmul_unsupported(self, device: "DeviceUnderTest") -> Optional[str]:
        """torch gained a float16 matmul on the CPU in 2.2; asked of torch by trying one."""
        one = torch.ones(1, 1, dtype=torch.float16)
        try:
            one @ one
        except RuntimeError:
            return (f"float16 matmul on the CPU needs torch >= 2.2 (this is torch "
                    f"{torch.__version__})")
        return None

    def telemetry(self, device: "DeviceUnderTest") -> Any:
        from pytest_ascend.platforms.cpu_telemetry import cpu_telemetry

        return cpu_telemetry(card_label(device))

    def open(self, index: int = 0, *, under_auto: bool = False) -> "CpuDevice":
        return CpuDevice(self, index)

    def device_count(self) -> int:
        return 1


class CpuDevice(DeviceUnderTest):
    """The host CPU. Timing is the host clock (CPU ops are synchronous); memory is the process."""

    memory_source = "process RSS (psutil; peak from /proc VmHWM)"

    def __init__(self, platform: Optional[Platform] = None, index: int = 0) -> None:
        self.platform = platform if platform is not None else CpuPlatform()
        self.index = index  # a stand-in's number; every one is the same host
        self.torch_device = torch.device("cpu")
        self.name = cpu_model_name()
        self._process = psutil.Process()

    def synchronize(self) -> None:
        """CPU tensor ops complete before they return; nothing is queued."""

    @contextmanager
    def timer(self) -> Iterator[Timing]:
        timing = Timing()
        start = time.perf_counter()
        yield timing
        timing.host_ms = timing.elapsed_ms = (time.perf_counter() - start) * 1e3

    def memory(self) -> MemorySnapshot:
        rss = int(self._process.memory_info().rss)
        vm = psutil.virtual_memory()
        return MemorySnapshot(
            allocated=rss,
            reserved=rss,
            peak=max(rss, _peak_rss() or 0),
            total=int(vm.total),
            free=int(vm.available),
            source=self.memory_source,
        )

    def reset_peak(self) -> None:
        """Writing 5 to clear_refs resets VmHWM to the current RSS (Linux >= 4.0)."""
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
        except OSError:
            pass  # not Linux, or not permitted: peak then covers the whole process life

    def empty_cache(self) -> None:
        """Collect garbage, then hand the heap's freed pages back to the OS (glibc
        `malloc_trim`): the process-level counterpart of an allocator's empty_cache, without
        which freed tensors keep counting in RSS."""
        gc.collect()
        if _LIBC is not None:
            _LIBC.malloc_trim(0)


def _glibc() -> Optional[ctypes.CDLL]:
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim  # noqa: B018  (musl and non-Linux C libraries lack it)
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _glibc()


def _peak_rss() -> Optional[int]:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None
