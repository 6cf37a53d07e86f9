"""A results log that survives the run: one JSON line per finished test, on disk at once.

pytest-json-report and pytest-benchmark write their files at session end, so a hard kill
(an NPU hang ended by a watchdog, the OOM killer, a lost SSH session) loses a whole night's
results. This log, like pytest-reportlog, appends each record and flushes it to disk before
the next test starts; it never truncates an existing file, so reruns accumulate.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any


class ResultsLog:
    """An append-only JSON-lines file; each `write` is on disk when it returns."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file = open(path, "a", encoding="utf-8")

    def write(self, kind: str, **fields: Any) -> None:
        record = {"type": kind, "time": time.time(), **fields}
        self._file.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


def read_results_log(path: Path) -> list[dict[str, Any]]:
    """Every record; a last line cut short by a kill mid-write is left out (any other bad
    line is corruption and raises)."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines[:-1]]
    if lines:
        try:
            records.append(json.loads(lines[-1]))
        except json.JSONDecodeError:
            pass
    return records
