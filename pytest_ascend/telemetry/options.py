"""The option of telemetry: how often each card is read."""

from __future__ import annotations

from pytest_ascend.options import OptionGroup, OptionSpec
from pytest_ascend.telemetry.sampler import DEFAULT_INTERVAL_S

TELEMETRY_OPTIONS = OptionGroup("telemetry", (
    OptionSpec(
        "telemetry_interval",
        "--ascend-telemetry-interval",
        "seconds between two readings of every card's power, temperature, clocks, memory, "
        "ECC and health while the suite runs (each test's timed region is read at its edges "
        "too)",
        default=DEFAULT_INTERVAL_S,
        metavar="SECONDS",
        is_seconds=True,
    ),
))
