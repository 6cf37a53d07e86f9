"""`pytest-ascend nightly`: one command for a scheduler in place of a hand-written script. It
runs the suite with every report on, stores the run, gates it against the history, writes
the history's pages beside the run's reports, and exits with one code that says which of
these went wrong.

Each night gets its own folder, `OUT/<UTC date and time>`, so a second run on the same day
never overwrites the first. SIGTERM (what cron timeouts, systemd, Jenkins and Slurm send) and
Ctrl-C are passed on to the suite, which stops as on Ctrl-C and writes every report; the
history is then still gated and written, and the exit code says the run was stopped.
"""

from __future__ import annotations

import datetime
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

STOP_GRACE_S = 300.0  # the suite writes its reports; a hung one is then killed


def night_folder(out: Path, now: Optional[datetime.datetime] = None) -> Path:
    """A new folder for this night, named by the UTC time; never one that exists."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    base = out / now.strftime("%Y%m%dT%H%M%SZ")
    folder, number = base, 1
    while True:
        try:
            folder.mkdir(parents=True)
            return folder
        except FileExistsError:
            number += 1
            folder = base.with_name(f"{base.name}-{number}")


def suite_argv(pytest_args: Sequence[str], storage: Path, folder: Path) -> list[str]:
    """The suite's command: the given arguments with every report of the night on."""
    return [sys.executable, "-m", "pytest", "-m", "npu", *pytest_args,
            "--benchmark-autosave", "--benchmark-save-data",
            f"--benchmark-storage=file://{storage.resolve()}",
            "--json-report", f"--json-report-file={folder / 'report.json'}",
            f"--ascend-results-log={folder / 'results.jsonl'}",
            f"--ascend-report-dir={folder}"]


def run_suite(argv: Sequence[str], say: Callable[[str], None]) -> tuple[int, bool]:
    """Run the suite; a SIGTERM or Ctrl-C here is passed on to it as SIGTERM, which it takes
    as Ctrl-C (every report written). Returns its exit code and whether it was stopped."""
    from pytest_ascend.processes import die_with_parent

    # its own session, so a terminal's Ctrl-C reaches it through here alone; and it dies
    # with this process should that be killed outright (it then writes its reports)
    process = subprocess.Popen(list(argv), start_new_session=True, preexec_fn=die_with_parent)
    stopped = []

    def forward(signum: int, frame: object) -> None:
        stopped.append(signum)
        say(f"{signal.Signals(signum).name}: stopping the suite (it writes its reports)")
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    deadline: Optional[float] = None
    try:
        while True:
            try:
                code = process.wait(timeout=1.0)
                break
            except subprocess.TimeoutExpired:
                if stopped and deadline is None:
                    deadline = time.monotonic() + STOP_GRACE_S
                if deadline is not None and time.monotonic() > deadline:
                    say(f"the suite did not stop within {STOP_GRACE_S:.0f} s: killing it")
                    os.killpg(process.pid, signal.SIGKILL)
                    deadline = math.inf
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return code, bool(stopped)


def newest_is_comparable(history: object) -> bool:
    """Whether the newest run has an earlier run of its own context to be judged against."""
    contexts = getattr(history, "contexts", [])
    runs = [(run.datetime, run.source, ctx) for ctx in contexts
            for members in ctx.runs.values() for run in members]
    if not runs:
        return False
    newest_context = max(runs, key=lambda item: (item[0], item[1]))[2]
    return sum(len(members) for members in newest_context.runs.values()) >= 2
