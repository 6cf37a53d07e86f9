"""An NVIDIA card's telemetry through NVML (nvidia-ml-py, the maintained binding, imported
only here and only on CUDA): power (nvmlDeviceGetPowerUsage, mW), energy since the driver
loaded (nvmlDeviceGetTotalEnergyConsumption, mJ), temperature, SM and memory clocks
(nvmlDeviceGetClockInfo), utilisation, memory used, volatile ECC counts
(nvmlDeviceGetTotalEccErrors), retired pages or, on Ampere and later, remapped rows, and the
clock-event (throttle) reasons. A call the card or driver lacks raises NVMLError_NotSupported
or NVMLError_FunctionNotFound: its fields are null, with that reason, from then on. NVML
keeps no health state; ECC, retired pages and a vanished card stand for it.

The card is found by its PCI bus id, not its CUDA index: CUDA_VISIBLE_DEVICES renumbers
the CUDA devices but not NVML's."""

from __future__ import annotations

from types import ModuleType
from typing import Any, Callable, Optional

from pytest_ascend.telemetry.reading import FIELDS, Source, TelemetryReader, Unreadable

# Clock-event reasons that mean the card slowed itself (pynvml's nvmlClocksEventReason* /
# nvmlClocksThrottleReason* bits); idle, application clocks, sync boost and display clock do
# not.
THROTTLE_BITS = {
    0x4: "software power cap",
    0x8: "hardware slowdown",
    0x20: "software thermal slowdown",
    0x40: "hardware thermal slowdown",
    0x80: "hardware power brake",
}


def throttle_names(mask: int) -> tuple[str, ...]:
    return tuple(name for bit, name in THROTTLE_BITS.items() if mask & bit)


def nvml_telemetry(card: str, bus_id: Optional[str], index: int,
                   nvml: Optional[ModuleType] = None) -> TelemetryReader:
    """The reader of the card at `bus_id` (else NVML index `index`). `nvml` is the pynvml
    module, imported here when not given."""
    if nvml is None:
        try:
            import pynvml as nvml  # type: ignore[no-redef]
        except ImportError:
            return TelemetryReader(card, [], {name: "install nvidia-ml-py (pip install "
                                                    "'pytest-ascend[cuda]') to read NVML"
                                              for name in FIELDS})
    nvml.nvmlInit()

    def handle() -> Any:
        if bus_id:
            return nvml.nvmlDeviceGetHandleByPciBusId(bus_id)
        return nvml.nvmlDeviceGetHandleByIndex(index)

    lacking = tuple(getattr(nvml, name) for name in ("NVMLError_NotSupported",
                                                     "NVMLError_FunctionNotFound")
                    if hasattr(nvml, name))

    def guarded(read: Callable[[Any], dict]) -> Callable[[], dict]:
        def call() -> dict:
            try:
                return read(handle())
            except lacking as exc:
                raise Unreadable(f"NVML: {exc}") from exc
        return call

    def ecc(h: Any) -> dict:
        def total(kind: int) -> int:
            return int(nvml.nvmlDeviceGetTotalEccErrors(h, kind, nvml.NVML_VOLATILE_ECC))
        return {"ecc_corrected": total(nvml.NVML_MEMORY_ERROR_TYPE_CORRECTED),
                "ecc_uncorrected": total(nvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED)}

    def retired(h: Any) -> dict:
        try:
            pages = sum(len(nvml.nvmlDeviceGetRetiredPages(h, cause)) for cause in (
                nvml.NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS,
                nvml.NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR))
        except lacking:  # Ampere and later remap rows instead of retiring pages
            corrected, uncorrected, *_ = nvml.nvmlDeviceGetRemappedRows(h)
            pages = int(corrected) + int(uncorrected)
        return {"retired_pages": pages}

    def reasons(h: Any) -> dict:
        current = getattr(nvml, "nvmlDeviceGetCurrentClocksEventReasons", None)
        try:
            mask = current(h) if current is not None else None
        except lacking:
            mask = None
        if mask is None:
            mask = nvml.nvmlDeviceGetCurrentClocksThrottleReasons(h)
        return {"throttle_reasons": throttle_names(int(mask))}

    sources = [
        Source(("power_w",), guarded(lambda h: {
            "power_w": nvml.nvmlDeviceGetPowerUsage(h) / 1e3})),
        Source(("energy_j",), guarded(lambda h: {
            "energy_j": nvml.nvmlDeviceGetTotalEnergyConsumption(h) / 1e3})),
        Source(("temperature_c",), guarded(lambda h: {
            "temperature_c": float(nvml.nvmlDeviceGetTemperature(
                h, nvml.NVML_TEMPERATURE_GPU))})),
        Source(("core_clock_mhz", "memory_clock_mhz"), guarded(lambda h: {
            "core_clock_mhz": float(nvml.nvmlDeviceGetClockInfo(h, nvml.NVML_CLOCK_SM)),
            "memory_clock_mhz": float(nvml.nvmlDeviceGetClockInfo(h, nvml.NVML_CLOCK_MEM))})),
        Source(("utilization_pct",), guarded(lambda h: {
            "utilization_pct": float(nvml.nvmlDeviceGetUtilizationRates(h).gpu)})),
        Source(("memory_used_mb",), guarded(lambda h: {
            "memory_used_mb": nvml.nvmlDeviceGetMemoryInfo(h).used / 2**20})),
        Source(("ecc_corrected", "ecc_uncorrected"), guarded(ecc)),
        Source(("retired_pages",), guarded(retired)),
        Source(("throttle_reasons",), guarded(reasons)),
    ]

    def present() -> bool:
        try:
            handle()
        except Exception:  # noqa: BLE001  (NVMLError_NotFound, GpuIsLost, ...)
            return False
        return True

    return TelemetryReader(card, sources, {"health": "NVML keeps no health state"}, present)

