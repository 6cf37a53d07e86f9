"""`pytest-ascend history --diff-profiles RUN_A RUN_B`: which operators' self time changed
most between two stored runs, benchmark by benchmark. It turns "TPOT +7% after CANN 8.3"
into "MatMulV2 +31%, RmsNorm unchanged".

A run is named by its file (a stored run or a --benchmark-json file), or by the start of
its name in the storage (`0007` as pytest-benchmark's --benchmark-compare takes it)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from pytest_ascend.profiling.operators import OperatorChange, Profile, rank_changes

SHOWN = 10  # operators per benchmark in the table; JSON holds all


class ProfileDiffError(ValueError):
    """Two runs that cannot be compared; the message is one line for the user."""


@dataclass(frozen=True)
class BenchmarkDiff:
    benchmark: str
    before: Profile
    after: Profile
    changes: list  # OperatorChange, largest first

    @property
    def total_change(self) -> float:
        return self.after.total_us / self.before.total_us - 1 if self.before.total_us else 0.0

    def headline(self, count: int = 3) -> str:
        """The largest movers, then what stayed put: `aten::mm +31% (+120.0 us), ...`."""
        moved = [c.describe() for c in self.changes if not c.unchanged][:count]
        steady = [c.describe() for c in self.changes if c.unchanged][:1]
        return ", ".join(moved + steady) or "no operator changed"


def find_run(spec: str, storage: Optional[Path]) -> Path:
    """The run file `spec` names: a path, or the one stored run whose name starts with it."""
    path = Path(spec)
    if path.is_file():
        return path
    if storage is None or not storage.is_dir():
        raise ProfileDiffError(f"{spec}: no such file, and no --storage folder to look in")
    matches = sorted(p for p in storage.glob("*/*.json") if p.name.startswith(spec))
    if len(matches) != 1:
        found = ", ".join(p.name for p in matches[:5]) or "none"
        raise ProfileDiffError(f"{spec}: {len(matches)} stored runs start with it in "
                               f"{storage} ({found}); give more of the name or a path")
    return matches[0]


def stored_profiles(path: Path) -> dict[str, Profile]:
    """Each profiled benchmark of the run in `path`, by its full name."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProfileDiffError(f"{path}: not a readable benchmark run ({exc})") from None
    profiles = {}
    for bench in data.get("benchmarks", []) if isinstance(data, dict) else []:
        extra = bench.get("extra_info") or {}
        if "profile" in extra:
            name = str(bench.get("fullname") or bench.get("name"))
            try:
                profiles[name] = Profile.from_json(extra["profile"])
            except ValueError as exc:
                raise ProfileDiffError(f"{path}: {name}: {exc}") from None
    return profiles


def diff_runs(before: Path, after: Path) -> list[BenchmarkDiff]:
    """The benchmarks profiled in both runs, each with its operators ranked by change."""
    a, b = stored_profiles(before), stored_profiles(after)
    for path, profiles in ((before, a), (after, b)):
        if not profiles:
            raise ProfileDiffError(f"{path}: no profiled benchmark (run the suite with "
                                   f"--ascend-profile=EXPR to store profiles)")
    common = sorted(set(a) & set(b))
    if not common:
        raise ProfileDiffError(f"no benchmark is profiled in both runs ({before.name}: "
                               f"{', '.join(sorted(a))}; {after.name}: {', '.join(sorted(b))})")
    diffs = []
    for name in common:
        if (a[name].tool, a[name].time_of) != (b[name].tool, b[name].time_of):
            raise ProfileDiffError(
                f"{name}: {a[name].tool} ({a[name].time_of} time) against {b[name].tool} "
                f"({b[name].time_of} time): profiles of different kinds do not compare")
        diffs.append(BenchmarkDiff(name, a[name], b[name], rank_changes(a[name], b[name])))
    return diffs


def render_diff(diffs: list[BenchmarkDiff], before: Path, after: Path,
                shown: int = SHOWN) -> str:
    lines = [f"profiles: {before.name} -> {after.name}"]
    for diff in diffs:
        lines += ["", f"{diff.benchmark} ({diff.before.tool}, {diff.before.time_of} self time)",
                  f"  all operators: {diff.before.total_us:.0f} us -> "
                  f"{diff.after.total_us:.0f} us ({diff.total_change:+.1%})",
                  f"  {diff.headline()}",
                  f"  {'operator':<48} {'before us':>11} {'after us':>11} {'change':>9}"]
        for change in diff.changes[:shown]:
            lines.append(f"  {change.name[:48]:<48} {change.before_us:>11.1f} "
                         f"{change.after_us:>11.1f} {_relative(change):>9}")
    return "\n".join(lines)


def diff_json(diffs: list[BenchmarkDiff], before: Path, after: Path) -> str:
    def change(c: OperatorChange) -> dict[str, Any]:
        return {"operator": c.name, "before_us": c.before_us, "after_us": c.after_us,
                "delta_us": c.delta_us, "relative": _relative(c), "unchanged": c.unchanged}

    return json.dumps({"before": str(before), "after": str(after), "benchmarks": [
        {"benchmark": d.benchmark, "tool": d.before.tool, "time_of": d.before.time_of,
         "before_total_us": d.before.total_us, "after_total_us": d.after.total_us,
         "headline": d.headline(), "operators": [change(c) for c in d.changes]}
        for d in diffs]}, indent=2)


def _relative(change: OperatorChange) -> str:
    if change.before_us == 0:
        return "new"
    if change.after_us == 0:
        return "gone"
    return f"{change.relative:+.1%}"
