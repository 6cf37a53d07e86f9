"""Profiling a test's timed region again after its measured rounds.

pytest-benchmark's own --benchmark-cprofile is the model: the rounds are timed unprofiled,
then the timed function runs one more time under the profiler, so no stored figure carries
the profiler's overhead. The same happens here with the platform's profiler (torch_npu's on
an NPU, torch.profiler elsewhere), for the tests `--ascend-profile=EXPR` selects, three
calls with each operator's median. The device is synchronized before and after each
profiled call, so the call's queued work is inside it.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

from pytest_ascend.profiling.operators import Profile, median_profile


def parse_selection(expression: str) -> str:
    """--ascend-profile's EXPR, checked now: -k's grammar (and, or, not, parentheses) over
    words matched against a test's name, its parents' names and its markers."""
    from _pytest.mark import expression as grammar

    # pytest's own -k parser (private, stable since pytest 6): its error is ParseError up to
    # pytest 8.0, SyntaxError since.
    try:
        grammar.Expression.compile(expression)
    except (getattr(grammar, "ParseError", SyntaxError), SyntaxError) as exc:
        raise ValueError(f"not an expression as -k takes: {exc}") from None
    return expression


def selected(expression: str, names: Iterable[str]) -> bool:
    """Whether a test with these names (node id parts, marker names) matches `expression`:
    each word is a case-insensitive substring of one of them, as -k matches."""
    from _pytest.mark.expression import Expression

    haystack = [name.lower() for name in names]

    def matches(word: str, /, **_: Any) -> bool:
        return any(word.lower() in name for name in haystack)

    return Expression.compile(expression).evaluate(matches)


def trace_folder(base: Path, session_stamp: str, nodeid: str) -> Path:
    """Where one test's trace goes: under `base` (the benchmark storage), by session and by
    test, in names any file system takes."""
    return base / "profiles" / session_stamp / re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid)[-150:]


@dataclass(frozen=True)
class TimedRegion:
    """What a benchmark fixture timed: its target, with the arguments (or the `setup` that
    makes them) and the `teardown` that follows each call."""

    target: Callable[..., Any]
    args: tuple = ()
    kwargs: Optional[dict] = None
    setup: Optional[Callable[[], Any]] = None
    teardown: Optional[Callable[..., Any]] = None

    def arguments(self) -> tuple[tuple, dict]:
        args, kwargs = self.args, dict(self.kwargs or {})
        if self.setup is not None:
            made = self.setup()
            if made:
                args, kwargs = made
        return args, kwargs


PROFILED_CALLS = 3  # each operator's median over these: one stall of the host is no change


def profile_call(platform: Any, device: Any, region: TimedRegion, trace_dir: Path,
                 base: Path, calls: int = PROFILED_CALLS) -> Profile:
    """The timed region `calls` times more, each call under its own profile (its setup before
    and its teardown after, the device synchronized around the call), and each operator's
    median over them: a call that a neighbour's load or a page fault stalled moves an
    operator's median no more than any one call does. The trace kept is the last call's,
    named relative to `base`."""
    profiles = []
    for _ in range(calls):
        args, kwargs = region.arguments()
        device.synchronize()
        with platform.profiler(trace_dir) as session:
            region.target(*args, **kwargs)
            device.synchronize()
        if region.teardown is not None:
            region.teardown(*args, **kwargs)
        profiles.append(session.profile())
    profile = median_profile(profiles)
    trace = (trace_dir / profile.trace).relative_to(base) if profile.trace else None
    return dataclasses.replace(profile, trace=None if trace is None else trace.as_posix())


class _RecordsTimedRegion:
    """Mixed into a benchmark fixture's class: it measures as before, and remembers what it
    timed in `timed_region`. The profile is taken after the test returns, so nothing the
    test computes from its measured rounds can include the profiled call."""

    timed_region: Optional[TimedRegion] = None

    def __call__(self, target: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        result = super().__call__(target, *args, **kwargs)  # type: ignore[misc]
        self.timed_region = TimedRegion(target, args, kwargs)
        return result

    def pedantic(self, target: Callable[..., Any], args: tuple = (),
                 kwargs: Optional[dict] = None, setup: Optional[Callable[[], Any]] = None,
                 teardown: Optional[Callable[..., Any]] = None, **rounds: Any) -> Any:
        if teardown is not None:  # pytest-benchmark < 5 has no teardown: pass it only if set
            rounds["teardown"] = teardown
        result = super().pedantic(target, args=args, kwargs=kwargs,  # type: ignore[misc]
                                  setup=setup, **rounds)
        self.timed_region = TimedRegion(target, args, kwargs, setup, teardown)
        return result


_RECORDING: dict[type, type] = {}


def record_timed_region(fixture: Any) -> None:
    """Make `fixture` (pytest-benchmark's, for one test) remember what it times. Its class
    becomes a subclass of its own, so it stays the BenchmarkFixture pytest-benchmark checks
    for, and every fixture that took it at setup sees the same object."""
    cls = type(fixture)
    if issubclass(cls, _RecordsTimedRegion):
        return
    if cls not in _RECORDING:
        _RECORDING[cls] = type(f"Recording{cls.__name__}", (_RecordsTimedRegion, cls), {})
    fixture.__class__ = _RECORDING[cls]
