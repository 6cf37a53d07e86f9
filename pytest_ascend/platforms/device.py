"""The device under test: npu, cuda and cpu behind one interface.

Every timing and memory figure the suite reports goes through this interface, so that a
test written once measures the same thing on an Atlas box, a GPU server and a laptop.

torch_npu mirrors `torch.cuda` under `torch.npu` (Ascend/pytorch: torch_npu/npu/__init__.py
exports is_available, device_count, set_device, get_device_name, get_device_properties,
synchronize; torch_npu/npu/streams.py has Event(enable_timing=True) with record /
synchronize / elapsed_time in milliseconds; torch_npu/npu/memory.py has memory_allocated,
max_memory_allocated, memory_reserved, reset_peak_memory_stats, empty_cache). The
accelerator implementation below therefore takes the backend module as a parameter and calls
only names both modules share.
`torch.accelerator.memory` would be the generic route, but it only exists from torch 2.9 and
Ascend images pin older torch builds to match their torch_npu; the backend module works on
every version this project supports.
"""

from __future__ import annotations

import ctypes
import gc
import importlib.util
import platform
import time
from abc import ABC, abstractmethod
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import ContextManager, Iterator, Optional

import psutil
import torch


class DeviceUnavailable(RuntimeError):
    """The requested device cannot be used; the message says why and what to do."""


@dataclass(frozen=True)
class MemorySnapshot:
    """Memory figures at one instant, in bytes.

    On an accelerator they come from the framework's caching allocator and the driver
    (`allocated`: bytes held by live tensors; `reserved`: bytes the allocator holds;
    `peak`: max allocated since the last reset). On a CPU there is no allocator to ask, so
    they are process figures (`allocated` = `reserved` = resident set size, `peak` = peak
    RSS) and `source` says so: never compare the two kinds as if they were the same thing.
    """

    allocated: int
    reserved: int
    peak: int
    total: int
    free: Optional[int]
    source: str


@dataclass
class Timing:
    """The result of one timed region; filled in when the region ends."""

    elapsed_ms: float = float("nan")
    host_ms: float = float("nan")


class DeviceUnderTest(ABC):
    """One device as the suite sees it; see shared/design.md, "Device under test"."""

    kind: str
    torch_device: torch.device
    name: str
    memory_source: str

    @abstractmethod
    def synchronize(self) -> None:
        """Wait until all work queued on the device has finished."""

    @abstractmethod
    def timer(self) -> ContextManager[Timing]:
        """Time a region on the device: `with dut.timer() as t: ...; t.elapsed_ms`."""

    @abstractmethod
    def memory(self) -> MemorySnapshot:
        """Current memory figures."""

    @abstractmethod
    def reset_peak(self) -> None:
        """Start a new peak-memory window."""

    @abstractmethod
    def empty_cache(self) -> None:
        """Return cached, unused memory to the device (or the process to the OS)."""

    @property
    def is_accelerator(self) -> bool:
        return self.kind != "cpu"

    def __repr__(self) -> str:
        return f"<DeviceUnderTest {self.torch_device} {self.name!r}>"

    @staticmethod
    def resolve(choice: str) -> "DeviceUnderTest":
        """The device for an `--ascend-device` value: auto tries npu, then cuda, then cpu.

        Under auto, an installed torch_npu that fails to initialise is an error, never a
        quiet fall-back to cpu: a broken CANN must not turn into a green CPU run.
        """
        if choice == "cpu":
            return CpuDevice()
        if choice == "cuda":
            return AcceleratorDevice("cuda", _cuda_backend())
        if choice == "npu":
            return AcceleratorDevice("npu", _npu_backend())
        if choice == "auto":
            if torch_npu_installed():
                return AcceleratorDevice("npu", _npu_backend(under_auto=True))
            if torch.cuda.is_available():
                return AcceleratorDevice("cuda", torch.cuda)
            return CpuDevice()
        raise DeviceUnavailable(f"unknown device {choice!r}: use auto, npu, cuda or cpu")


def torch_npu_installed() -> bool:
    return importlib.util.find_spec("torch_npu") is not None


def _npu_backend(under_auto: bool = False) -> ModuleType:
    """Import torch_npu and return `torch.npu`, or raise with the reason in one line."""
    hint = " (pass --ascend-device cpu or cuda to test without it)" if under_auto else ""
    if not torch_npu_installed():
        raise DeviceUnavailable(
            "--ascend-device npu: torch_npu is not installed; install the torch-npu build that "
            f"matches torch {torch.__version__} and source CANN's set_env.sh"
        )
    try:
        import torch_npu  # noqa: F401  (registers the torch.npu namespace)
    except Exception as exc:  # any failure here is a broken CANN/driver install
        raise DeviceUnavailable(
            f"torch_npu is installed but failed to initialise: {_one_line(exc)}; check that "
            f"CANN's set_env.sh is sourced and matches torch_npu{hint}"
        ) from exc
    backend = getattr(torch, "npu", None)
    if backend is None:
        raise DeviceUnavailable(f"torch_npu imported but torch.npu is missing{hint}")
    try:
        available = backend.is_available() and backend.device_count() > 0
    except Exception as exc:
        raise DeviceUnavailable(
            f"torch_npu failed to initialise the NPU: {_one_line(exc)}{hint}"
        ) from exc
    if not available:
        raise DeviceUnavailable(
            "torch_npu is installed but no NPU is visible: check `npu-smi info`, the driver, "
            f"and ASCEND_RT_VISIBLE_DEVICES{hint}"
        )
    return backend


def _cuda_backend() -> ModuleType:
    if not torch.cuda.is_available():
        build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        raise DeviceUnavailable(
            f"--ascend-device cuda: no CUDA device is visible (torch {torch.__version__} is "
            f"{build}); check nvidia-smi and CUDA_VISIBLE_DEVICES, or use --ascend-device auto"
        )
    return torch.cuda


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


class AcceleratorDevice(DeviceUnderTest):
    """An NPU or GPU, driven through its torch backend module (`torch.npu` / `torch.cuda`)."""

    def __init__(self, kind: str, backend: ModuleType, index: int = 0) -> None:
        self.kind = kind
        self.backend = backend
        self.index = index
        self.torch_device = torch.device(kind, index)
        self.memory_source = f"{kind} caching allocator"
        # torch_npu's get_device_name(i) checks i but returns the SoC name of the *current*
        # device (_npu_getDeviceName() takes no index, torch_npu/npu/__init__.py); making
        # index current first gives the right name on both backends and is what every
        # later call on this device relies on.
        backend.set_device(index)
        self.name = str(backend.get_device_name(index))

    def synchronize(self) -> None:
        self.backend.synchronize(self.index)

    @contextmanager
    def timer(self) -> Iterator[Timing]:
        """Events bracket the region on the device's stream; the end event is waited on.

        The device is synchronized first so work queued before the region is not counted.
        """
        timing = Timing()
        start = self.backend.Event(enable_timing=True)
        end = self.backend.Event(enable_timing=True)
        self.synchronize()
        host_start = time.perf_counter()
        start.record()
        yield timing
        end.record()
        end.synchronize()
        timing.host_ms = (time.perf_counter() - host_start) * 1e3
        timing.elapsed_ms = float(start.elapsed_time(end))

    def memory(self) -> MemorySnapshot:
        b, i = self.backend, self.index
        if hasattr(b, "mem_get_info"):
            free, total = b.mem_get_info(i)
        else:  # absent from the torch_npu 5.0.x releases (e.g. 2.1.0); added in 6.0.rc1
            free, total = None, b.get_device_properties(i).total_memory
        return MemorySnapshot(
            allocated=int(b.memory_allocated(i)),
            reserved=int(b.memory_reserved(i)),
            peak=int(b.max_memory_allocated(i)),
            total=int(total),
            free=None if free is None else int(free),
            source=self.memory_source,
        )

    def reset_peak(self) -> None:
        self.backend.reset_peak_memory_stats(self.index)

    def empty_cache(self) -> None:
        self.backend.empty_cache()


class CpuDevice(DeviceUnderTest):
    """The host CPU. Timing is the host clock (CPU ops are synchronous); memory is the process."""

    kind = "cpu"
    memory_source = "process RSS (psutil; peak from /proc VmHWM)"

    def __init__(self) -> None:
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


def cpu_model_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"

