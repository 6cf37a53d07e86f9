"""One background sampler for the whole session: every card's reader, every interval.

Reads happen off the timed path, in a daemon thread; a region's edges are read too
(`mark`), so even a region shorter than the interval has a reading at each end. The default
interval is DEFAULT_INTERVAL_S: a read costs a few NVML calls or npu-smi runs on a host
core, and the suite's harness-overhead test (tests/perf/test_harness_overhead.py) runs with
sampling on at that interval.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Sequence

from pytest_ascend.periodic import PeriodicSampler
from pytest_ascend.telemetry.reading import CardReading, TelemetryReader

DEFAULT_INTERVAL_S = 1.0
KEEP_READINGS = 100_000  # per card: a day at the default interval


class TelemetrySampler(PeriodicSampler):
    thread_name = "pytest-ascend-telemetry"

    def __init__(self, readers: Sequence[TelemetryReader],
                 interval_s: float = DEFAULT_INTERVAL_S) -> None:
        super().__init__(interval_s)
        self.readers = list(readers)
        self._readings: dict[str, deque] = {r.card: deque(maxlen=KEEP_READINGS)
                                            for r in self.readers}
        self._lock = threading.Lock()

    def _sample(self) -> None:
        with self._lock:  # one read of a card at a time: mark() and the thread both read
            for reader in self.readers:
                self._readings[reader.card].append(reader.read())

    def mark(self) -> None:
        """Read every card now: a region's edge."""
        self._sample()

    def readings(self, card: str) -> list[CardReading]:
        with self._lock:
            return list(self._readings[card])

    def cards(self) -> list[str]:
        return [r.card for r in self.readers]
