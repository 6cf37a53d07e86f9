"""One report failing must never cost the others.

pytest-benchmark writes --benchmark-json and its autosave inside its own session-end hook
wrapper, before pytest-json-report and the results log write theirs. When it raises there,
pluggy runs none of the later session-end hooks: a Ctrl-C inside a benchmark's first round
leaves a benchmark with no rounds (`min() arg is an empty sequence`), and a full disk or an
unwritable --benchmark-json path raise OSError; either way the JSON report and the results
log's last line were lost and the exit status was 1, not pytest's 2 for an interrupt.
pytest-json-report, for its part, swallows its own write error into a summary line and
exits 0.

`ReportGuard` runs around all of them: before, it drops benchmarks that finished no round
(the finished ones are still saved) and makes pytest-benchmark's saving report a failure
instead of raising; after, it checks that the JSON report was written in this session. Each
failure is one line in the summary, and a run whose tests all passed exits with
EXIT_REPORT_NOT_WRITTEN instead of 0.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from pytest_ascend.errors import one_line

EXIT_REPORT_NOT_WRITTEN = 6  # after pytest's own 0..5


class ReportGuard:
    def __init__(self, config: Any) -> None:
        self.config = config
        self.started = time.time()
        self.failures: list[str] = []

    def before_session_end(self) -> None:
        benchmarks = getattr(self.config, "_benchmarksession", None)
        if benchmarks is None:
            return
        # A benchmark's statistics are falsy until its first round finished.
        benchmarks.benchmarks[:] = [bench for bench in benchmarks.benchmarks if bench]
        save = benchmarks.handle_saving

        def save_or_report() -> None:
            try:
                save()
            except Exception as exc:
                target = benchmarks.json or benchmarks.storage
                if hasattr(target, "write"):  # pytest-benchmark 4 opens --benchmark-json
                    target = target.name
                self.failures.append(f"pytest-benchmark did not save its report ({target}): "
                                     f"{one_line(exc)}")

        benchmarks.handle_saving = save_or_report

    def check_json_report(self) -> None:
        """pytest-json-report only prints 'could not save report'; make it a failure."""
        option = self.config.option
        if not getattr(option, "json_report", False):
            return
        path = Path(option.json_report_file)
        if not path.is_file():  # never read a device such as /dev/full: it has no end
            self.failures.append(f"pytest-json-report did not write {path}: not a file")
            return
        try:
            written = json.loads(path.read_text(encoding="utf-8")).get("created", 0)
        except (OSError, ValueError, AttributeError) as exc:
            self.failures.append(f"pytest-json-report did not write {path}: {one_line(exc)}")
            return
        if not isinstance(written, (int, float)) or written < self.started:
            self.failures.append(f"pytest-json-report did not write {path} in this session")

    def exit_status(self, status: int) -> int:
        """The session's status, or EXIT_REPORT_NOT_WRITTEN where it would otherwise be 0."""
        return EXIT_REPORT_NOT_WRITTEN if self.failures and status == 0 else status
