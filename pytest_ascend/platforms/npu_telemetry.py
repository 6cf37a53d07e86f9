"""An Ascend card's telemetry through npu-smi, which every Atlas box has on PATH.

Queries, per chip (NPU id N, chip id C; `npu-smi info -m` maps the runtime's logic id to
them), and what each gives. Labels are those npu-smi prints (its source: hicann/driver,
src/custom/dev_prod/user/npucli, `npu_info_print.c` / `npu_chip_info.c`; outputs recorded
from 910B and 910 boxes and Huawei's npu-smi reference are under tests/plugin/data/npu-smi):
- `npu-smi info -t common -i N` (card level only; a block per chip): `NPU Real-time
  Power(W)`, `Temperature(C)`, `Aicore curFreq(MHZ)`, `Aicore Usage Rate(%)`;
- `npu-smi info -t memory -i N -c C`: `HBM Clock Speed(MHz)`;
- `npu-smi info -t usages -i N -c C`: `HBM Capacity(MB)` x `HBM Usage Rate(%)`;
- `npu-smi info -t ecc -i N -c C`: `HBM|DDR Single|Double Bit Error Count` (since the
  driver loaded) and `... Isolated Pages Count`;
- `npu-smi info -t health -i N -c C`: `Health Status` (OK, Warning, Alarm, Critical).
Every line is a TAB, the label padded, ` : `, the value: split at the first colon (bus ids
hold colons). A query the chip lacks prints "This device does not support querying <type>."
and exits 0. npu-smi has no energy counter (energy is power integrated) and names no
throttle reason: its frequency-reduction query is not exposed, so a fall of curFreq tells.
"""

from __future__ import annotations

import time
from typing import Callable, Optional

from pytest_ascend.telemetry.reading import Source, TelemetryReader, Unreadable

Tool = Callable[[list], str]  # argv -> standard output (facts.run_tool in use)
NOT_SUPPORTED = "does not support querying"


def parse_blocks(text: str) -> list[dict[str, str]]:
    """`label : value` lines in blank-line separated blocks (a card-level query prints a
    header block, then one per chip); a line with an empty label continues the last value."""
    if NOT_SUPPORTED in text:
        raise Unreadable(f"npu-smi: {text.strip().splitlines()[-1].strip()}")
    blocks: list[dict[str, str]] = [{}]
    last = None
    for line in text.splitlines():
        if not line.strip():
            if blocks[-1]:
                blocks.append({})
            continue
        label, sep, value = line.partition(":")
        if not sep:
            continue
        label, value = label.strip(), value.strip()
        if not label and last is not None:
            blocks[-1][last] += f"; {value}"
            continue
        blocks[-1][label] = value
        last = label
    return [block for block in blocks if block]


def number(value: Optional[str]) -> Optional[float]:
    """npu-smi's figure, or None for NA, Failed, `-` and the like."""
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def chip_block(text: str, chip: int) -> dict[str, str]:
    """The block of chip `chip` in a card-level query (not the board's MCU)."""
    for block in parse_blocks(text):
        if block.get("Chip ID") == str(chip) and block.get("Chip Name", "").lower() != "mcu":
            return block
    raise ValueError(f"npu-smi printed no block for chip {chip}")


def merged(text: str) -> dict[str, str]:
    """A chip-level query's fields (`-i N -c C`), in one mapping."""
    fields: dict[str, str] = {}
    for block in parse_blocks(text):
        fields.update(block)
    return fields


def common_figures(text: str, chip: int) -> dict:
    block = chip_block(text, chip)
    return {"power_w": number(block.get("NPU Real-time Power(W)")),
            "temperature_c": number(block.get("Temperature(C)")),
            "core_clock_mhz": number(block.get("Aicore curFreq(MHZ)")),
            "utilization_pct": number(block.get("Aicore Usage Rate(%)"))}


def memory_used_mb(text: str) -> dict:
    fields = merged(text)
    capacity, rate = number(fields.get("HBM Capacity(MB)")), number(
        fields.get("HBM Usage Rate(%)"))
    return {"memory_used_mb": capacity * rate / 100
            if capacity is not None and rate is not None else None}


def ecc_counts(text: str) -> dict:
    """Volatile single- and double-bit counts, summed over HBM and DDR where both are
    listed; isolated (retired) pages of either kind."""
    fields = merged(text)

    def total(*labels: str) -> Optional[int]:
        values = [number(fields.get(label)) for label in labels if label in fields]
        known = [v for v in values if v is not None]
        return int(sum(known)) if known else None

    return {
        "ecc_corrected": total("HBM Single Bit Error Count", "DDR Single Bit Error Count",
                               "Single-bit Error Count"),
        "ecc_uncorrected": total("HBM Double Bit Error Count", "DDR Double Bit Error Count",
                                 "Double-bit Error Count"),
        "retired_pages": total("HBM Single Bit Isolated Pages Count",
                               "HBM Double Bit Isolated Pages Count",
                               "DDR Single Bit Isolated Pages Count",
                               "DDR Double Bit Isolated Pages Count"),
    }


def health_state(text: str) -> dict:
    fields = merged(text)
    state = fields.get("Health Status", fields.get("Health"))
    if state is None:
        raise ValueError("npu-smi printed no health state")
    return {"health": state}


class CachedTool:
    """npu-smi answers, kept for `ttl_s`: several fields of one chip come from one query,
    and a query takes a noticeable fraction of a second."""

    def __init__(self, tool: Tool, ttl_s: float = 0.5) -> None:
        self.tool, self.ttl_s = tool, ttl_s
        self._kept: dict[tuple, tuple[float, str]] = {}

    def __call__(self, argv: list) -> str:
        key, now = tuple(argv), time.monotonic()
        kept = self._kept.get(key)
        if kept is None or now - kept[0] > self.ttl_s:
            kept = (now, self.tool(list(argv)))
            self._kept[key] = kept
        return kept[1]


def npu_telemetry(card: str, npu: int, chip: int, tool: Tool,
                  present: Optional[Callable[[], bool]] = None) -> TelemetryReader:
    """The reader of chip `chip` of NPU `npu`, through `tool` (npu-smi)."""
    ask = CachedTool(tool)

    def query(kind: str, per_chip: bool = True) -> str:
        argv = ["npu-smi", "info", "-t", kind, "-i", str(npu)]
        return ask(argv + ["-c", str(chip)] if per_chip else argv)

    sources = [
        Source(("power_w", "temperature_c", "core_clock_mhz", "utilization_pct"),
               lambda: common_figures(query("common", per_chip=False), chip)),
        Source(("memory_clock_mhz",), lambda: {"memory_clock_mhz": number(
            merged(query("memory")).get("HBM Clock Speed(MHz)"))}),
        Source(("memory_used_mb",), lambda: memory_used_mb(query("usages"))),
        Source(("ecc_corrected", "ecc_uncorrected", "retired_pages"),
               lambda: ecc_counts(query("ecc"))),
        Source(("health",), lambda: health_state(query("health"))),
    ]
    unreadable = {
        "energy_j": "npu-smi has no energy counter: energy is power integrated over time",
        "throttle_reasons": "npu-smi names no throttle reason: a fall of Aicore curFreq "
                            "tells",
    }
    return TelemetryReader(card, sources, unreadable, present)
