"""A watchdog for tests blocked in native code: a hung device call is never timed out.

pytest-timeout's signal method cannot interrupt a call blocked in C (a hung NPU
synchronize waits exactly like that: the signal handler would run only once the call
returns), so its guard never fires; its thread method does fire, but it `os._exit`s, and
the results log, the JSON report and the benchmark JSON of everything that finished are
lost. This watchdog is a thread too, but before it ends the process it writes those: the
caller's `on_expiry` gets the test, the phase, how long it ran and every thread's stack.

The watchdog keeps pytest-timeout's policy rather than a second one: it is armed from
pytest-timeout's own `pytest_timeout_set_timer` hook, so it watches exactly what
pytest-timeout times (the call alone under `timeout_func_only`, setup and teardown too
otherwise) with the same budget, plus a grace of a tenth of it (at most 30 s) so that
pytest-timeout gets the first chance at a hang it can interrupt and fails the test alone.
Only a test that pytest-timeout does not time has its call watched with --ascend-watchdog.
"""

from __future__ import annotations

import sys
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Callable, Optional

EXIT_HUNG = 7  # after pytest's 0..5 and report_guard's 6


@dataclass(frozen=True)
class Hang:
    """What the watchdog saw when a phase ran past its budget."""

    nodeid: str
    phase: str
    seconds: float
    budget_s: float
    stacks: dict[str, str]  # thread name -> its stack, innermost call last

    def describe(self) -> str:
        return (f"{self.nodeid} ({self.phase}) made no progress for {self.seconds:.0f} s "
                f"(budget {self.budget_s:g} s): blocked in native code, a hung device call?")


def grace_s(budget_s: float) -> float:
    return min(30.0, budget_s / 10)


def thread_stacks() -> dict[str, str]:
    """Every thread's current stack, by name (the hung call is in the main thread's)."""
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    return {f"{names.get(ident, 'thread')} ({ident})": "".join(traceback.format_stack(frame))
            for ident, frame in sys._current_frames().items()}


class Watchdog:
    """One thread for the session; `arm` before a phase, `disarm` after it. When an armed
    phase outlives its budget and grace, `on_expiry(hang)` runs on the watchdog's thread,
    once (the plugin's ends the process; a stand-in that returns ends only the thread).
    `close` ends an idle watchdog's thread."""

    def __init__(self, on_expiry: Callable[[Hang], None]) -> None:
        self._on_expiry = on_expiry
        self._lock = threading.Condition()
        self._armed: Optional[tuple[str, str, float, float]] = None  # nodeid, phase, start, budget
        self._fired = False
        self._closed = False
        self._thread = threading.Thread(target=self._watch, name="pytest-ascend-watchdog",
                                        daemon=True)
        self._thread.start()

    def arm(self, nodeid: str, phase: str, budget_s: float) -> None:
        with self._lock:
            self._armed = (nodeid, phase, time.monotonic(), budget_s)
            self._lock.notify()

    def relabel(self, phase: str) -> None:
        """Name the phase now running, without restarting the clock: one budget covers the
        whole test when pytest-timeout times setup, call and teardown together."""
        with self._lock:
            if self._armed is not None:
                nodeid, _, start, budget = self._armed
                self._armed = (nodeid, phase, start, budget)

    def armed_for(self) -> Optional[str]:
        """The node id of the armed test, if any."""
        with self._lock:
            return None if self._armed is None else self._armed[0]

    def disarm(self) -> None:
        """End the armed phase. A phase that comes back after its expiry (a long call in C
        that did finish, late) is held here for good: `on_expiry` is writing the reports and
        ending the process, and the session must not run on into the next test and its own
        session end meanwhile."""
        with self._lock:
            while self._fired:
                self._lock.wait()
            self._armed = None
            self._lock.notify()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._lock.notify_all()

    def _watch(self) -> None:
        while True:
            with self._lock:
                while self._armed is None and not self._closed:
                    self._lock.wait()
                if self._closed:
                    return
                nodeid, phase, start, budget = self._armed
                deadline = start + budget + grace_s(budget)
                now = time.monotonic()
                if now < deadline:
                    self._lock.wait(deadline - now)
                    continue
                self._fired = True
            self._on_expiry(Hang(nodeid, phase, now - start, budget, thread_stacks()))
            # Never again: had this looped, an on_expiry that returned would fire on every
            # pass, a thread spinning on the GIL for the rest of the process (it once
            # slowed a CI session's serving sweep 100-fold).
            return
