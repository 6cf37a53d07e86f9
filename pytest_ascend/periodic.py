"""A background thread that samples something at a fixed interval while a test runs.

Device memory during a generation, a server's memory during a load sweep: peaks come and go
between two calls from the test, so a thread watches. Subclasses say what one sample is.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Optional


class PeriodicSampler:
    """Calls `_sample()` every `interval_s` from `start()` to `stop()`, and once more at the
    stop (the state at the end, however short the run was). Use as a context manager, or
    `start()` / `stop()`. `_sample` may set `self._stopping` to end the sampling early."""

    thread_name = "pytest-ascend-sampler"

    def __init__(self, interval_s: float) -> None:
        if interval_s <= 0:
            raise ValueError(f"sampling interval must be > 0 s, got {interval_s}")
        self.interval_s = interval_s
        self._stopping = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._start = 0.0

    def start(self) -> "PeriodicSampler":
        self._start = time.perf_counter()
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def elapsed_s(self) -> float:
        return time.perf_counter() - self._start

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._sample()
            self._stopping.wait(self.interval_s)

    def _sample(self) -> None:
        raise NotImplementedError
