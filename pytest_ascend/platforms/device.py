"""The device under test: one interface for every platform's devices.

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

import threading
import time
from abc import ABC, abstractmethod
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any, ContextManager, Iterator, Optional

import torch

if TYPE_CHECKING:
    from pytest_ascend.platforms.base import Platform

# torch_npu's mem_get_info fills one global struct and hands Python a reference to it
# (Ascend/pytorch, torch_npu/csrc/npu/Module.cpp: `NPUDeviceMem memory;` filled by
# GetDeviceMemories under an NPUGuard, bound with return_value_policy::reference), and
# get_device_properties does the same with one static `prop`. Two threads asking for two
# cards can each read the other's figures. Every query of the driver's free / total in this
# process goes through `DeviceUnderTest.memory()`, which holds this lock from the call until
# the figures are copied into Python ints; so the sampler threads (measure.memory,
# serving.health) and the main thread never interleave there. A lock rather than sampling
# only allocator counters: the server-health sampler needs the driver's free figure (the
# server's memory is in another process), which only mem_get_info gives.
DRIVER_QUERY_LOCK = threading.Lock()


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
    """One device as the suite sees it: timing and memory figures that mean the same on an
    Atlas box, a GPU server and a laptop. `platform` is the kind of device it is, and answers
    everything that differs between kinds."""

    platform: "Platform"
    torch_device: torch.device
    name: str
    memory_source: str
    index: int = 0  # among the platform's visible cards

    @abstractmethod
    def synchronize(self) -> None:
        """Wait until all work queued on the device has finished."""

    @abstractmethod
    def timer(self) -> ContextManager[Timing]:
        """Time a region on the device: `with dut.timer() as t: ...; t.elapsed_ms`."""

    @contextmanager
    def transfer_timer(self, *others: "DeviceUnderTest") -> Iterator[Timing]:
        """Time work that spans this card and `others` (a copy between cards) on the host
        clock, every card involved synchronized before and after: no one card's events see
        the whole of a transfer that another card's engine may drive."""
        timing = Timing()
        cards = (self, *others)
        for card in cards:
            card.synchronize()
        start = time.perf_counter()
        yield timing
        for card in cards:
            card.synchronize()
        timing.host_ms = timing.elapsed_ms = (time.perf_counter() - start) * 1e3

    @abstractmethod
    def memory(self) -> MemorySnapshot:
        """Current memory figures."""

    @abstractmethod
    def reset_peak(self) -> None:
        """Start a new peak-memory window."""

    @abstractmethod
    def empty_cache(self) -> None:
        """Return cached, unused memory to the device (or the process to the OS)."""

    def describe(self) -> dict[str, Any]:
        """What the header and the report name a card by: index, name, memory, bus id (None
        where the runtime does not say)."""
        from pytest_ascend.platforms.facts import safe

        return {"index": self.index, "name": self.name,
                "memory_total": safe(lambda: self.memory().total),
                "bus_id": safe(lambda: self.platform.bus_id(self))}

    @property
    def kind(self) -> str:
        return self.platform.kind

    def __repr__(self) -> str:
        return f"<DeviceUnderTest {self.torch_device} {self.name!r}>"


class AcceleratorDevice(DeviceUnderTest):
    """An accelerator driven through its torch backend module (`torch.npu`, `torch.cuda`, or
    any module with the same functions), for the platform that opened it."""

    def __init__(self, platform: "Platform", backend: ModuleType, index: int = 0) -> None:
        self.platform = platform
        self.backend = backend
        self.index = index
        self.torch_device = torch.device(platform.kind, index)
        self.memory_source = f"{platform.kind} caching allocator"
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
        Events record on the current device's stream, so this card is made current first:
        with several cards open, the last one opened would otherwise be timed.
        """
        self.backend.set_device(self.index)
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
        with DRIVER_QUERY_LOCK:  # the runtime's answer is shared state: see the lock
            if hasattr(b, "mem_get_info"):
                free, total = (int(value) for value in b.mem_get_info(i))
            else:  # absent from the torch_npu 5.0.x releases (e.g. 2.1.0); added in 6.0.rc1
                free, total = None, int(b.get_device_properties(i).total_memory)
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
