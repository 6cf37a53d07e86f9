"""Reading stored benchmark runs through pytest-benchmark's own storage.

`--storage` is handed to pytest-benchmark's `load_storage`, so it accepts exactly what
`--benchmark-storage` and `pytest-benchmark compare --storage` accept: a directory, a
`file://` URI, or an `elasticsearch+http[s]://` one. Files are listed by the storage's own
query (its machine-id folders and the files beside them); each is then read here, so a file
that is not a pytest-ascend run is skipped with a reason naming it, never fatal, and never
rewritten (nothing here writes).
"""

from __future__ import annotations

import datetime
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional, Union

from pytest_ascend.errors import one_line

# Runs are only compared within one context: same hardware, model, dtype, smoke or not.
LIST_KEYS = ("cards",)  # the one list the ascend block holds: each selected card's facts
CONTEXT_KEYS = ("ascend.device_kind", "ascend.device_name", "ascend.model", "ascend.dtype",
                "ascend.smoke")


class HistoryError(RuntimeError):
    """Nothing usable to compare (exit 2); the message says why in one line."""


@dataclass(frozen=True)
class Run:
    """One pytest-benchmark run written by a pytest-ascend session."""

    source: str  # the file, or the storage's key for it
    datetime: str
    machine_info: dict
    benchmarks: list

    def lookup(self, dotted: str) -> Any:
        """A machine_info value by dotted key (`ascend.cann`); None when absent."""
        value: Any = self.machine_info
        for part in dotted.split("."):
            if not isinstance(value, dict):
                return None
            value = value.get(part)
        return value


UNKNOWN_BOX = "unknown host"


def box_name(run: Run) -> str:
    """The box a run was measured on: its --ascend-box-name (`ascend.box`) where given,
    else its host (pytest-benchmark's `node`, platform.node()); runs that say neither are
    one box, named so."""
    for name in (run.lookup("ascend.box"), run.machine_info.get("node")):
        if isinstance(name, str) and name.strip():
            return name
    return UNKNOWN_BOX


@dataclass(frozen=True)
class Skipped:
    source: str
    reason: str


def load_runs(storage: Optional[str], json_files: Iterable[Path] = ()) -> tuple[list[Run],
                                                                                list[Skipped]]:
    """Every pytest-ascend run in `storage` (a pytest-benchmark storage path or URI) and in
    `json_files` (--benchmark-json output), with the files skipped and why."""
    found: list[Union[Run, Skipped]] = []
    if storage is not None:
        found += list(_stored_runs(storage))
    for path in json_files:
        if not path.is_file():
            raise HistoryError(f"--json {path}: no such file")
        found.append(_read_file(path))
    return ([r for r in found if isinstance(r, Run)],
            [r for r in found if isinstance(r, Skipped)])


def _stored_runs(storage: str) -> Iterator[Union[Run, Skipped]]:
    from pytest_benchmark.storage.file import FileStorage
    from pytest_benchmark.utils import load_storage

    uri = storage if "://" in storage else f"file://{storage}"
    if uri.startswith("file://") and not Path(uri[len("file://"):]).is_dir():
        # FileStorage would create it; a history tool only reads.
        raise HistoryError(f"benchmark storage {storage} is not a directory; pass --storage "
                           f"PATH (what pytest --benchmark-storage was given) or --json FILE")
    try:
        store = load_storage(uri, logger=_Silent(), netrc="")
    except Exception as exc:  # an unknown scheme, or elasticsearch not installed/reachable
        raise HistoryError(f"--storage {storage}: {one_line(exc)}") from None
    if isinstance(store, FileStorage):
        for path in store.query():
            yield _read_file(Path(path))
    else:
        for key, data in store.load():
            yield as_run(str(key), data)


def results_log_runs(path: Path, records: Iterable[Any]) -> list[Union[Run, Skipped]]:
    """The sessions of a results log (--ascend-results-log) as runs: each session's
    passed tests' metrics, with the provenance its session_start recorded. What a killed
    run finished is in it, where pytest-benchmark's files were never written. A test's
    time is not (the log holds its metrics, not pytest-benchmark's rounds)."""
    sessions: dict[str, dict] = {}
    for record in records:
        if not isinstance(record, dict) or not isinstance(record.get("session"), str):
            continue
        session = sessions.setdefault(record["session"], {"benchmarks": []})
        if record.get("type") == "session_start":
            session["machine_info"] = {"node": record.get("host"),
                                       "ascend": record.get("ascend")}
            stamp = record.get("time")
            if finite_number(stamp):
                session["datetime"] = datetime.datetime.fromtimestamp(
                    stamp, datetime.timezone.utc).isoformat()
        elif record.get("type") == "test" and record.get("when") == "call" and \
                record.get("outcome") == "passed" and isinstance(record.get("metrics"), dict):
            nodeid = str(record.get("nodeid"))
            session["benchmarks"].append({"fullname": nodeid, "name": nodeid.split("::")[-1],
                                          "extra_info": record["metrics"]})
    return [as_run(f"{path}#{session_id}", data) if "machine_info" in data else
            Skipped(f"{path}#{session_id}", "no session_start record: the log does not say "
                    "which box ran it")
            for session_id, data in sessions.items()]


def _read_file(path: Path) -> Union[Run, Skipped]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return Skipped(str(path), f"unreadable: {exc}")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        if is_results_log(text):
            return Skipped(str(path), "a pytest-ascend results log (JSON lines); the history "
                           "reads pytest-benchmark output only (--benchmark-json, "
                           "--benchmark-autosave)")
        return Skipped(str(path), f"not JSON ({exc.msg} at line {exc.lineno})")
    return as_run(str(path), data)


def is_results_log(text: str) -> bool:
    try:
        first = json.loads(text.split("\n", 1)[0])
    except json.JSONDecodeError:
        return False
    return isinstance(first, dict) and first.get("type") == "session_start"


def as_run(source: str, data: Any) -> Union[Run, Skipped]:
    """`data` (pytest-benchmark's JSON) as a Run, or Skipped saying what makes it unusable."""
    problem = _shape_problem(data)
    if problem is not None:
        return Skipped(source, problem)
    caveat = data["machine_info"]["ascend"].get("timing_caveat")
    if caveat:  # recorded by reports.environment: ASCEND_LAUNCH_BLOCKING=1 and the like
        return Skipped(source, f"timings not comparable: {caveat}")
    return Run(source, data.get("datetime") or "", data["machine_info"], data["benchmarks"])


def _shape_problem(data: Any) -> Optional[str]:
    """What makes `data` unusable as a pytest-ascend run, or None. Everything the history
    later reads is checked here, so a malformed file is skipped by name, never a traceback
    (nor an exit status that could be taken for a regression)."""
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list) or \
            not isinstance(data.get("machine_info"), dict):
        return "not pytest-benchmark output (no benchmarks / machine_info)"
    ascend = data["machine_info"].get("ascend")
    if not isinstance(ascend, dict):
        return "no ascend block in machine_info (not a pytest-ascend run)"
    for key, value in ascend.items():
        if key in LIST_KEYS and isinstance(value, list):
            continue
        if not (_scalar(value) or isinstance(value, dict)):
            return f"machine_info.ascend.{key} is a {type(value).__name__}, not a value"
    for dotted in CONTEXT_KEYS:
        value = ascend.get(dotted.split(".", 1)[1])
        if not _scalar(value):
            return f"machine_info.{dotted} is a {type(value).__name__}, not a value"
    if not isinstance(data.get("datetime") or "", str):
        return "datetime is not text"
    for index, bench in enumerate(data["benchmarks"]):
        problem = _benchmark_problem(bench)
        if problem is not None:
            return f"benchmarks[{index}] {problem}"
    return None


def _benchmark_problem(bench: Any) -> Optional[str]:
    if not isinstance(bench, dict):
        return "is not an object"
    name = bench.get("fullname") or bench.get("name")
    if not isinstance(name, str):
        return "has no name"
    stats, extra = bench.get("stats", {}), bench.get("extra_info", {})
    if not isinstance(stats, dict) or not isinstance(extra, dict):
        return f"({name}): stats or extra_info is not an object"
    data = stats.get("data", [])
    if not isinstance(data, list) or not all(finite_number(x) for x in data):
        return f"({name}): stats.data holds something other than numbers"
    for key in ("median", "iqr"):
        if stats.get(key) is not None and not finite_number(stats[key]):
            return f"({name}): stats.{key} is not a number"
    rounds = extra.get("rounds", {})
    if not isinstance(rounds, dict) or not all(
            isinstance(values, list) and all(finite_number(x) for x in values)
            for values in rounds.values()):
        return f"({name}): extra_info.rounds is not lists of numbers by metric"
    return None


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, bool)) or finite_number(value)


def finite_number(value: Any) -> bool:
    """A real number the history can compute with (not a bool, NaN or infinite)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and \
        math.isfinite(value)


class _Silent:
    """pytest-benchmark's storages report through a logger; the history reports itself."""

    def warning(self, text: str, **kwargs: Any) -> None:
        """Dropped: a file that does not load is reported as skipped, with its reason."""

    def info(self, text: str, **kwargs: Any) -> None:
        """Dropped: only saving logs at info level, and the history never saves."""
