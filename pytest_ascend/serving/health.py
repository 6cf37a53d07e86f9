"""The server's health while load runs: its memory, the device's, and whether it is still up.

A server that leaks under load, or restarts and comes back, can still answer most requests
of a sweep; the figures would look fine and the run would be wrong. So a background thread
samples the server's process tree (resident memory, summed over every process: SGLang runs
a tokenizer, a scheduler and a detokenizer) and, on an accelerator, the device memory in use
(total - free: the server's allocations are in another process, so only the driver's
figure sees them), and notes when the server's process exited.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from pytest_ascend.periodic import PeriodicSampler


class ServerHealthSampler(PeriodicSampler):
    """Samples every `interval_s` until stopped; use as a context manager."""

    thread_name = "pytest-ascend-server-health"

    def __init__(self, pid: Optional[int], device: Any, interval_s: float = 0.5,
                 gone: Callable[[], Optional[str]] = lambda: None) -> None:
        super().__init__(interval_s)
        self.pid = pid
        self.device = (device if device is not None and device.platform.has_device_memory
                       else None)
        self.gone = gone
        self.samples: list = []  # (seconds, server RSS bytes or None, device used or None)
        self.exit: Optional[str] = None  # why the server went away, when it did

    def _sample(self) -> None:
        if self.exit is None:
            self.exit = self.gone()
        self.samples.append((round(self.elapsed_s(), 3), self._tree_rss(),
                             self._device_used()))

    def _tree_rss(self) -> Optional[int]:
        if self.pid is None:
            return None
        import psutil

        try:
            root = psutil.Process(self.pid)
            processes = [root, *root.children(recursive=True)]
        except psutil.Error:
            return None
        total = 0
        for process in processes:
            try:
                total += process.memory_info().rss
            except psutil.Error:
                continue
        return total

    def _device_used(self) -> Optional[int]:
        if self.device is None:
            return None
        try:
            snap = self.device.memory()
        except Exception:  # a sampler must never take the test down with it
            return None
        return None if snap.free is None else snap.total - snap.free

    def report(self) -> dict:
        """Peaks and growth, and the series, for a benchmark's extra_info."""
        rss = [s[1] for s in self.samples if s[1] is not None]
        used = [s[2] for s in self.samples if s[2] is not None]
        return {
            "server_exit": self.exit,
            "server_rss_peak_bytes": max(rss) if rss else None,
            "server_rss_growth_bytes": rss[-1] - rss[0] if len(rss) > 1 else None,
            "device_used_peak_bytes": max(used) if used else None,
            "health_samples": {"seconds": [s[0] for s in self.samples],
                               "server_rss_bytes": [s[1] for s in self.samples],
                               "device_used_bytes": [s[2] for s in self.samples]},
        }
