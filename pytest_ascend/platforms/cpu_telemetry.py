"""The host CPU's telemetry: clock, utilisation, memory and temperature through psutil;
energy from the kernel's RAPL counters (/sys/class/powercap/intel-rapl:N/energy_uj, package
domains, microjoules, wrapping at max_energy_range_uj), power from their rise between two
readings; memory errors from EDAC (/sys/devices/system/edac/mc/mc*/ce_count, ue_count).
A CPU reports no health state and no throttle reason. Each root is a parameter so tests read
a recorded tree."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import psutil

from pytest_ascend.telemetry.reading import Source, TelemetryReader, Unreadable

POWERCAP = Path("/sys/class/powercap")
EDAC = Path("/sys/devices/system/edac/mc")
CPU_SENSORS = ("coretemp", "k10temp", "zenpower", "cpu_thermal", "acpitz")


def _clock() -> dict:
    freq = psutil.cpu_freq()
    if freq is None or not freq.current:
        raise Unreadable("psutil reads no CPU clock here")
    return {"core_clock_mhz": float(freq.current)}


def _load() -> dict:
    return {"utilization_pct": psutil.cpu_percent(interval=None),
            "memory_used_mb": psutil.virtual_memory().used / 2**20}


def _temperature() -> dict:
    sensors = getattr(psutil, "sensors_temperatures", lambda: {})() or {}
    readings = [entry.current for name in CPU_SENSORS for entry in sensors.get(name, ())]
    if not readings:
        raise Unreadable("no CPU temperature sensor (psutil.sensors_temperatures)")
    return {"temperature_c": max(readings)}


class RaplEnergy:
    """Package energy since the first reading, summed over sockets, wraps undone; power is
    the rise over the time since the previous reading."""

    def __init__(self, root: Path = POWERCAP) -> None:
        self.domains = sorted(d for d in root.glob("intel-rapl:*") if d.name.count(":") == 1)
        if not self.domains:
            raise Unreadable(f"no RAPL package counter under {root}")
        try:
            self.ranges = [int((d / "max_energy_range_uj").read_text()) for d in self.domains]
            self.last = self._raw()
        except (OSError, ValueError) as exc:
            raise Unreadable(f"RAPL counters under {root} are not readable ({exc})") from exc
        self.total_uj = 0
        self.last_at = time.perf_counter()

    def _raw(self) -> list[int]:
        return [int((d / "energy_uj").read_text()) for d in self.domains]

    def read(self) -> dict:
        now, at = self._raw(), time.perf_counter()
        rise = sum((b - a) if b >= a else (b + span - a)
                   for a, b, span in zip(self.last, now, self.ranges))
        seconds = at - self.last_at
        self.total_uj += rise
        self.last, self.last_at = now, at
        return {"energy_j": self.total_uj / 1e6,
                "power_w": rise / 1e6 / seconds if seconds > 0 else None}


def _edac(root: Path) -> dict:
    controllers = sorted(root.glob("mc[0-9]*"))
    if not controllers:
        raise Unreadable(f"no EDAC memory controller under {root}")

    def total(name: str) -> int:
        return sum(int((mc / name).read_text()) for mc in controllers)

    return {"ecc_corrected": total("ce_count"), "ecc_uncorrected": total("ue_count")}


def cpu_telemetry(card: str, powercap: Path = POWERCAP, edac: Path = EDAC
                  ) -> TelemetryReader:
    sources = [Source(("core_clock_mhz",), _clock),
               Source(("utilization_pct", "memory_used_mb"), _load),
               Source(("temperature_c",), _temperature),
               Source(("ecc_corrected", "ecc_uncorrected"), lambda: _edac(edac))]
    unreadable = {"health": "a CPU reports no health state",
                  "throttle_reasons": "not read on a CPU",
                  "memory_clock_mhz": "not read on a CPU",
                  "retired_pages": "not read on a CPU"}
    rapl: Optional[RaplEnergy] = None
    try:
        rapl = RaplEnergy(powercap)
    except Unreadable as exc:
        unreadable.update(energy_j=str(exc), power_w=str(exc))
    if rapl is not None:
        sources.append(Source(("energy_j", "power_w"), rapl.read))
    psutil.cpu_percent(interval=None)  # the first call only starts psutil's interval
    return TelemetryReader(card, sources, unreadable)
