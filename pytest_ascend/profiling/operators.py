"""Operator tables: each operator's self time in one profiled call of a timed region, and
the ranking of what changed between two of them.

Self time, not total time: an operator's total includes the operators it calls, so a slower
matmul would also make every layer that calls it look slower. A table is built from what the
profiler of the platform reports (torch.profiler's key averages; on an NPU the
`kernel_details.csv` torch_npu's profiler writes), and stored in the benchmark's extra_info,
so two runs compare without their traces.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import Any, Iterable, Mapping, Optional, Sequence

# Below this relative change (and this many microseconds) an operator is called unchanged:
# a profiled call is one call, and its operators move by a few percent from run to run.
UNCHANGED_FRACTION = 0.05
UNCHANGED_US = 1.0


@dataclass(frozen=True)
class OperatorTime:
    calls: int
    self_us: float


@dataclass(frozen=True)
class Profile:
    """One profiled call: who measured (`tool`), whose time (`time_of`: the device's, or the
    host's where the host is the device), each operator's self time, and the raw trace."""

    tool: str
    time_of: str
    operators: Mapping[str, OperatorTime]
    trace: Optional[str] = None  # the trace file or folder, relative to the storage

    def to_json(self) -> dict[str, Any]:
        return {"tool": self.tool, "time_of": self.time_of, "trace": self.trace,
                "unit": "us",
                "operators": {name: {"calls": op.calls, "self_us": round(op.self_us, 3)}
                              for name, op in sorted(self.operators.items(),
                                                     key=lambda item: -item[1].self_us)}}

    @classmethod
    def from_json(cls, data: Any) -> "Profile":
        """A stored profile; ValueError naming what is wrong with one that is not."""
        if not isinstance(data, dict) or not isinstance(data.get("operators"), dict):
            raise ValueError("not a pytest-ascend profile (no operators table)")
        operators = {}
        for name, entry in data["operators"].items():
            try:
                calls, self_us = int(entry["calls"]), float(entry["self_us"])
            except (TypeError, KeyError, ValueError):
                raise ValueError(f"operator {name!r}: needs calls and self_us") from None
            if not math.isfinite(self_us) or self_us < 0 or calls < 0:
                raise ValueError(f"operator {name!r}: {self_us} us in {calls} calls")
            operators[str(name)] = OperatorTime(calls, self_us)
        return cls(str(data.get("tool", "")), str(data.get("time_of", "")), operators,
                   data.get("trace"))

    @property
    def total_us(self) -> float:
        return sum(op.self_us for op in self.operators.values())


def median_profile(profiles: Sequence[Profile]) -> Profile:
    """Each operator's median self time and calls over `profiles` (one profiled call each;
    an operator absent from a call counted as 0 there), with the last one's tool and trace."""
    names = {name for profile in profiles for name in profile.operators}
    absent = OperatorTime(0, 0.0)
    operators = {}
    for name in names:
        times = [profile.operators.get(name, absent) for profile in profiles]
        operators[name] = OperatorTime(int(median(op.calls for op in times)),
                                       float(median(op.self_us for op in times)))
    last = profiles[-1]
    return Profile(last.tool, last.time_of, operators, last.trace)


def from_key_averages(averages: Iterable[Any], *, device: bool) -> dict[str, OperatorTime]:
    """torch.profiler's `key_averages()` as a table: each host-side operator with its self
    time on the device (`device`), or on the host where the host is the device. Kernel rows
    are left out: their time is already their launching operator's self device time."""
    table = {}
    for event in averages:
        if getattr(getattr(event, "device_type", None), "name", "CPU") != "CPU":
            continue
        if device:
            self_us = getattr(event, "self_device_time_total", None)
            if self_us is None:  # torch < 2.4 names it after CUDA
                self_us = event.self_cuda_time_total
        else:
            self_us = event.self_cpu_time_total
        if self_us > 0:
            table[str(event.key)] = OperatorTime(int(event.count), float(self_us))
    return table


def from_kernel_details(path: Path) -> dict[str, OperatorTime]:
    """torch_npu's kernel_details.csv (one row per operator executed on the NPU) summed by
    operator type: `Type` and `Duration(us)`, the fields CANN's profiling guide documents
    (hiascend.com, "Timeline and Summary Data", kernel_details.csv). A file without them is
    a ValueError naming the columns it has."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        rows = csv.DictReader(handle)
        fields = rows.fieldnames or []
        if "Type" not in fields or "Duration(us)" not in fields:
            raise ValueError(f"{path}: no Type and Duration(us) columns (has: "
                             f"{', '.join(fields) or 'none'})")
        sums: dict[str, list[float]] = {}
        for row in rows:
            entry = sums.setdefault(row["Type"], [0, 0.0])
            entry[0] += 1
            entry[1] += float(row["Duration(us)"])
    return {name: OperatorTime(int(calls), total) for name, (calls, total) in sums.items()}


@dataclass(frozen=True)
class OperatorChange:
    name: str
    before_us: float
    after_us: float

    @property
    def delta_us(self) -> float:
        return self.after_us - self.before_us

    @property
    def relative(self) -> float:
        """after / before - 1; infinite for an operator new in `after`."""
        if self.before_us == 0:
            return math.inf if self.after_us > 0 else 0.0
        return self.after_us / self.before_us - 1

    @property
    def unchanged(self) -> bool:
        return abs(self.delta_us) < UNCHANGED_US or abs(self.relative) < UNCHANGED_FRACTION

    def describe(self) -> str:
        if self.unchanged:
            return f"{self.name} unchanged"
        if self.before_us == 0:
            return f"{self.name} new ({self.after_us:.1f} us)"
        if self.after_us == 0:
            return f"{self.name} gone (was {self.before_us:.1f} us)"
        return f"{self.name} {self.relative:+.0%} ({self.delta_us:+.1f} us)"


def rank_changes(before: Profile, after: Profile) -> list[OperatorChange]:
    """Every operator of either profile, the largest change in self time first (by
    microseconds: a 300% change of a 2 us operator matters less than 10% of a matmul)."""
    names = set(before.operators) | set(after.operators)
    changes = [OperatorChange(name, _us(before, name), _us(after, name)) for name in names]
    return sorted(changes, key=lambda c: (-abs(c.delta_us), c.name))


def _us(profile: Profile, name: str) -> float:
    op = profile.operators.get(name)
    return 0.0 if op is None else op.self_us
