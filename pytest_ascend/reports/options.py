"""The options of the reports that survive a killed run."""

from __future__ import annotations

from pytest_ascend.options import OptionGroup, OptionSpec, path


REPORT_OPTIONS = OptionGroup("reports", (
    OptionSpec(
        "results_log",
        "--ascend-results-log",
        "append one JSON line per finished test (outcome, duration, metrics) to PATH, flushed "
        "at once, so a crash or a kill mid-run keeps every finished result",
        metavar="PATH",
        is_path=True,
        final=path,
    ),
))
