"""A results log that survives the run: one JSON line per finished test, on disk at once.

pytest-json-report and pytest-benchmark write their files at session end, so a hard kill
(an NPU hang ended by a watchdog, the OOM killer, a lost SSH session) loses a whole night's
results. This log, like pytest-reportlog, appends each record and syncs it to disk before
the next test starts; it never truncates an existing file, so reruns accumulate. Two
sessions may share one log (a nightly and a manual run): every record carries its session's
id, so the lines of each can be told apart however they interleave.

A kill mid-write or a full disk can leave a line cut short. A new session therefore starts on
a fresh line, the reader skips (and counts) cut lines wherever they are, and a write that
fails (ENOSPC) stops the log without stopping the tests: `failure` says why, and `lost`
how many records did not make it.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any, Optional


class ResultsLog:
    """An append-only JSON-lines file; each `write` is on disk when it returns, or the log
    has stopped (`failure`) and counts what it could not write (`lost`)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.session_id = uuid.uuid4().hex[:12]
        self.failure: Optional[str] = None
        self.lost = 0
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        if _ends_mid_line(path):  # a previous session was cut off mid-record
            self._append(b"\n")

    def write(self, kind: str, **fields: Any) -> None:
        if self.failure is not None:
            self.lost += 1
            return
        record = {"type": kind, "time": time.time(), "session": self.session_id, **fields}
        line = json.dumps(record, ensure_ascii=False, default=str) + "\n"
        try:
            self._append(line.encode("utf-8"))
            os.fsync(self._fd)
        except OSError as exc:
            self.failure = f"{exc.strerror or exc}"
            self.lost += 1

    def close(self) -> None:
        os.close(self._fd)

    def _append(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view):]


def _ends_mid_line(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            if fh.seek(0, os.SEEK_END) == 0:
                return False
            fh.seek(-1, os.SEEK_END)
            return fh.read(1) != b"\n"
    except OSError:  # not seekable (a device): nothing to mend
        return False


class ResultsLogRecords(list):
    """The records of a results log, and how many lines were skipped as cut short."""

    cut_lines: int = 0


def read_results_log(path: Path) -> ResultsLogRecords:
    """Every record, in order; a line cut short by a kill or a full disk, wherever it is, is
    left out and counted in `cut_lines`."""
    records = ResultsLogRecords()
    for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            records.cut_lines += 1
            continue
        if isinstance(record, dict):
            records.append(record)
        else:
            records.cut_lines += 1
    return records
