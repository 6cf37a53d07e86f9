"""One reading of one card, and the reader a platform supplies for it.

A field a platform cannot read is None, never a made-up zero, and the reader says why once
(`unreadable`), for the header. Gauges are summarised over a region (min, median, max);
counters only ever grow (energy, ECC errors, retired pages), so a region's figure is their
rise.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Optional

GAUGES = ("power_w", "temperature_c", "core_clock_mhz", "memory_clock_mhz",
          "utilization_pct", "memory_used_mb")
COUNTERS = ("energy_j", "ecc_corrected", "ecc_uncorrected", "retired_pages")
FIELDS = (*GAUGES, *COUNTERS, "health", "throttle_reasons")
# npu-smi's health states, best first (DCMI: 0 OK, 1 minor, 2 major, 3 critical alarm);
# NVML and the CPU report no such state.
HEALTH_STATES = ("OK", "Warning", "Alarm", "Critical")


@dataclass(frozen=True)
class CardReading:
    at_s: float  # time.perf_counter() when read: the clock the tests' regions use
    power_w: Optional[float] = None
    temperature_c: Optional[float] = None
    core_clock_mhz: Optional[float] = None
    memory_clock_mhz: Optional[float] = None
    utilization_pct: Optional[float] = None
    memory_used_mb: Optional[float] = None
    energy_j: Optional[float] = None  # since some fixed point (driver load, boot)
    ecc_corrected: Optional[int] = None
    ecc_uncorrected: Optional[int] = None
    retired_pages: Optional[int] = None
    health: Optional[str] = None  # one of HEALTH_STATES, or what the tool said
    throttle_reasons: Optional[tuple[str, ...]] = None  # () read and none; None unread

    def value(self, name: str) -> Optional[float]:
        return getattr(self, name)


class Unreadable(Exception):
    """This field cannot be read on this card at all (not supported, no sensor, no
    permission): said once, never retried."""


@dataclass(frozen=True)
class Source:
    """Fields one query gives (one npu-smi command, one NVML call, one sysfs file)."""

    fields: tuple[str, ...]
    read: Callable[[], dict]  # field -> value; a field it leaves out is None this time


@dataclass
class TelemetryReader:
    """Reads one card through its sources. A source that raises Unreadable is not asked
    again, its fields null with the reason kept in `unreadable`; any other failure leaves
    that one reading's fields None (a tool that failed once may answer next time)."""

    card: str  # how the header names the card
    sources: list[Source]
    unreadable: dict[str, str] = field(default_factory=dict)
    # Whether the card is still listed by its driver (a card that fell off the bus is not);
    # None: the platform cannot tell, and no card is reported missing.
    present: Optional[Callable[[], bool]] = None

    def __post_init__(self) -> None:
        covered = {name for source in self.sources for name in source.fields}
        for name in FIELDS:
            if name not in covered and name not in self.unreadable:
                self.unreadable[name] = "not read on this platform"

    def read(self) -> CardReading:
        values: dict[str, object] = {}
        for source in self.sources:
            if source.fields[0] in self.unreadable:
                continue
            try:
                got = source.read()
            except Unreadable as exc:
                for name in source.fields:
                    self.unreadable[name] = str(exc)
                continue
            except Exception:  # noqa: BLE001  (one failed read is a gap, not a crash)
                continue
            values.update({name: got.get(name) for name in source.fields})
        return CardReading(at_s=time.perf_counter(), **values)  # type: ignore[arg-type]

    def unreadable_line(self) -> Optional[str]:
        """The header's one line on what this card's telemetry lacks, grouped by reason."""
        if not self.unreadable:
            return None
        by_reason: dict[str, list[str]] = {}
        for name in FIELDS:
            if name in self.unreadable:
                by_reason.setdefault(self.unreadable[name], []).append(name)
        return f"{self.card}: " + "; ".join(f"{', '.join(names)} null ({reason})"
                                            for reason, names in by_reason.items())
