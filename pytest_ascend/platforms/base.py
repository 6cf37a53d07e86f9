"""The platform interface: everything the suite knows about one kind of device, in one place.

vLLM's `platforms/` is the model, without its god-class: a `Platform` answers questions
about a kind of device (is it here, how to open one, which env var hides cards, what facts
describe its stack, its default dtype, its SGLang flags, its collective backend, its
datasheet), and the `DeviceUnderTest` it opens does the measuring. Adding a device kind is
one new module with one `Platform` subclass, registered under the `pytest_ascend.platforms`
entry point group (see `pytest_ascend.platforms`); no other module branches on a kind.

Capabilities are asked of the platform by name, as vLLM's `platforms/interface.py` does
(`is_bf16_supported`, ...): what the device's memory is, how torchrun ranks map onto cards,
and, per chip, what the chip can compute and serve. A test asks the question it means
("has this card its own memory?"), never "is this an accelerator?", which stood for several
different questions and answered some of them wrongly on a 910A.
"""

from __future__ import annotations

import os
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, Mapping, Optional, Sequence

if TYPE_CHECKING:
    from pathlib import Path

    from pytest_ascend.platforms.device import DeviceUnderTest
    from pytest_ascend.telemetry.reading import TelemetryReader


def card_label(device: "DeviceUnderTest") -> str:
    """How telemetry and the health gate name a card: its index and its name."""
    return f"card {device.index} ({device.name})"


class DeviceUnavailable(RuntimeError):
    """The requested device cannot be used; the message says why and what to do, in one line."""


@dataclass(frozen=True)
class DatasheetPeak:
    """A device's published peak figures: dense (no sparsity), per dtype, with their source.

    `official` is True only for figures from the vendor's own datasheet; the suite asserts
    that a measurement does not exceed an official figure, and only reports the others.
    """

    model: str
    bandwidth_gb_s: float
    tflops: dict[str, Optional[float]]
    source: str
    official: bool
    # A card's whole interconnect to its peers, both directions summed, as datasheets state
    # it (NVLink 900 GB/s on an H100 SXM): no collective's bus bandwidth can exceed it.
    link_gb_s: Optional[float] = None


def lookup_datasheet(table: Sequence[tuple[str, DatasheetPeak]],
                     device_name: str) -> Optional[DatasheetPeak]:
    """The first entry whose pattern matches the name the runtime reports for the device."""
    for pattern, peak in table:
        if re.search(pattern, device_name, flags=re.IGNORECASE):
            return peak
    return None


NO_ENV: Mapping[str, str] = MappingProxyType({})


class Platform(ABC):
    """One kind of device. Subclasses set the class attributes and implement `present`,
    `open` and `device_count`; the rest has defaults that suit a platform with nothing to
    add."""

    kind: ClassVar[str]  # the --ascend-device value and the torch device type
    auto_priority: ClassVar[int]  # --ascend-device auto tries platforms lowest first
    # The device has memory of its own, reported by its allocator and driver (free / total
    # are the card's); False: memory figures are the host process's (RSS), and transfers
    # to it need no pinned host memory.
    has_device_memory: ClassVar[bool] = True
    # The debug switch that serialises every launch with the host (timings then mean nothing).
    launch_blocking_env: ClassVar[Optional[str]] = None
    # torchrun starts one rank per selected card, rank i on card i; False: every rank shares
    # the one host device (two ranks, so a collective has two ends).
    one_rank_per_card: ClassVar[bool] = True
    # The host CPU itself, what --ascend-device auto falls back to: a real checkpoint there
    # takes hours.
    is_host: ClassVar[bool] = False
    # The one device may stand for several cards: `--ascend-devices=N` opens N stand-ins that
    # share it (card index 0..N-1), so what runs per card (the sweep, the soak's processes)
    # runs N times over, as torchrun's ranks share it. False: only the cards the runtime shows.
    host_stand_ins: ClassVar[bool] = False
    default_dtype: ClassVar[str] = "float16"
    visible_devices_env: ClassVar[Optional[str]] = None  # the env var that hides cards
    distributed_backend: ClassVar[str]  # torch.distributed backend for collectives
    sglang_flags: ClassVar[tuple[str, ...]] = ()  # what SGLang needs for this device
    sglang_env: ClassVar[Mapping[str, str]] = NO_ENV  # environment of a launched server
    # (flag, value) pairs the session's own launched server gets unless --sglang-arg sets them
    sglang_server_defaults: ClassVar[tuple[tuple[str, str], ...]] = ()
    # What a process needs in its environment, before the runtime starts, for results that
    # repeat bit for bit (with torch.use_deterministic_algorithms): the soak's workers get it.
    deterministic_env: ClassVar[Mapping[str, str]] = NO_ENV
    # torch.profiler.ProfilerActivity member of the device; None: the host's own time counts
    profiler_device_activity: ClassVar[Optional[str]] = None
    recorded_env_vars: ClassVar[tuple[str, ...]] = ()  # names; a trailing * matches a prefix
    fact_keys: ClassVar[tuple[str, ...]] = ()  # the environment-block keys `facts` fills
    # Facts a run on this platform must know, with where each comes from (the compat suite
    # fails naming the source of each one missing).
    required_facts: ClassVar[Mapping[str, str]] = NO_ENV

    @abstractmethod
    def present(self) -> bool:
        """Whether this platform's stack is installed here. Under auto, the first present
        platform is used, and failing to open it is an error, never a quiet fall-back."""

    @abstractmethod
    def open(self, index: int = 0, *, under_auto: bool = False) -> "DeviceUnderTest":
        """The device at `index` of those visible, initialised; raises DeviceUnavailable
        with one line saying why (and, `under_auto`, how to choose another platform)."""

    @abstractmethod
    def device_count(self) -> int:
        """Devices of this kind visible to the process."""

    def facts(self, device: "DeviceUnderTest") -> dict[str, Any]:
        """The stack facts of `device` under the names in `fact_keys` (None where unknown)."""
        return {}

    def stack_versions(self) -> list[tuple[str, Optional[str]]]:
        """(label, version) pairs the report header shows between torch and transformers."""
        return []

    def bus_id(self, device: "DeviceUnderTest") -> Optional[str]:
        """The card's PCI bus id (`0000:c1:00.0`), where the runtime or a tool gives it."""
        return None

    def datasheet(self, device_name: str) -> Optional[DatasheetPeak]:
        """Published peak figures for a device of this kind, if any are known."""
        return None

    def profiler(self, trace_dir: "Path") -> Any:
        """A profiler around one call of a timed region (--ascend-profile), writing its trace
        into `trace_dir`; `profile()` after it gives each operator's self time. torch.profiler,
        on the device named by `profiler_device_activity`, else on the host."""
        from pytest_ascend.profiling.sessions import TorchProfilerSession

        return TorchProfilerSession(trace_dir, self.profiler_device_activity)

    def telemetry(self, device: "DeviceUnderTest") -> "TelemetryReader":
        """The reader of the card's power, temperature, clocks, memory, ECC and health
        (pytest_ascend.telemetry); a platform that reads none says so for every field."""
        from pytest_ascend.telemetry.reading import FIELDS, TelemetryReader

        return TelemetryReader(card_label(device), [], {
            name: f"the {self.kind} platform reads no telemetry" for name in FIELDS})

    def bf16_unsupported(self, device: "DeviceUnderTest") -> Optional[str]:
        """Why `device` cannot compute in bfloat16 (one line naming the chip), or None when
        it can."""
        return None

    def float16_matmul_unsupported(self, device: "DeviceUnderTest") -> Optional[str]:
        """Why `device` has no float16 matmul (one line naming the versions), or None."""
        return None

    def float32_matmul_reduced(self, device: "DeviceUnderTest") -> Optional[str]:
        """Why a float32 matmul on `device` does not run in float32 as configured (a reduced
        precision the runtime picks), or None when it does."""
        return None

    def sglang_unsupported(self, device: "DeviceUnderTest") -> Optional[str]:
        """Why SGLang cannot serve on `device` (one line naming the chip and what SGLang
        supports), or None when it can."""
        return None

    def first_use_compile_s(self, device: "DeviceUnderTest") -> float:
        """Seconds the first use of operators may spend compiling them on `device` (0 when
        kernels are prebuilt): warm-up and watchdog budgets add it."""
        return 0.0

    def timing_caveat(self, environ: Optional[Mapping[str, str]] = None) -> Optional[str]:
        """Why timings taken under `environ` (default: this process's) do not measure the
        device (the platform's launch-blocking debug switch is on), or None."""
        variable = self.launch_blocking_env
        value = (os.environ if environ is None else environ).get(variable or "", "0")
        if variable is None or value in ("", "0"):
            return None
        return (f"{variable}={value} runs every device operation synchronously with the host: "
                f"timings do not measure the device (unset it for a timed run)")

    def __repr__(self) -> str:
        return f"<Platform {self.kind}>"
