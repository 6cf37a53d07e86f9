"""The soak on every selected card at once: one worker process per card (soak.worker), started
together, followed while they run, stopped together, and judged.

    result = run_soak(SoakPlan(cards, seconds=900, model="tiny", dtype="float32",
                               out_dir=Path("soak")), progress=print)

The workers load and warm up first; the clock starts when all of them are ready, with one
`go` to all, so that siblings are loaded alike while they are compared. While they run, each
card's records are checked as they arrive (soak.agreement) and, every `minute_s`, a line per
card goes to `soak.jsonl` (synced, so a soak killed at hour three keeps hours one and two)
and to the caller's `log`. At the end, or at Ctrl-C, SIGTERM, a timeout or any failure,
every worker is stopped (SIGTERM, a grace, SIGKILL), and what was measured is judged and
written: `soak.json`, a PNG per card, and the table.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import Any, Callable, Mapping, Optional, Sequence

from pytest_ascend.platforms.base import card_label
from pytest_ascend.processes import die_with_parent, stop_process_tree
from pytest_ascend.soak.agreement import AgreementCheck
from pytest_ascend.soak.stability import CardStability, judge_stability, window_seconds
from pytest_ascend.soak.worker import PLANT_ENV

POLL_S = 0.5
READY_TIMEOUT_S = 1800.0  # eight cards loading a 14B checkpoint from one disk
STOP_GRACE_S = 5.0  # a worker's SIGTERM ends it at once; this covers a call stuck in a driver
MINUTE_S = 60.0
RATE_WORKLOADS = ("decode", "matmul")  # the rate followed over time: the first one that ran
_LEGIBLE_RATE = {"decode": ("decode tokens/s", 1.0), "matmul": ("matmul TFLOP/s", 1e-12)}


class SoakError(RuntimeError):
    """The soak could not start; one line naming the card and why."""


@dataclass(frozen=True)
class SoakPlan:
    cards: Sequence[Any]  # DeviceUnderTest of each selected card
    seconds: float
    dtype: str
    out_dir: Path
    model: Optional[str] = None  # a spec; None runs no decode (with `no_model` saying why)
    no_model: Optional[str] = None
    cache_dir: Optional[Path] = None
    base_model: Optional[str] = None
    trust_remote_code: bool = False
    drift: float = 0.10
    tolerance: float = 0.10  # below the siblings' median
    minute_s: float = MINUTE_S
    ends_by: Optional[float] = None  # epoch seconds the soak must have stopped by
    ends_by_why: str = ""  # who set `ends_by` (pytest-timeout), for the note when it cuts
    plants: Mapping[int, str] = field(default_factory=dict)  # card -> soak.worker.Plant text
    ready_timeout_s: float = READY_TIMEOUT_S


@dataclass
class CardSoak:
    card: int
    name: str
    pid: Optional[int] = None
    load_s: Optional[float] = None
    threads: Optional[int] = None
    workloads: list = field(default_factory=list)
    no_model: Optional[str] = None
    iterations: int = 0
    points: dict = field(default_factory=dict)  # workload -> [(seconds since go, rate)]
    nondeterministic: set = field(default_factory=set)
    notes: set = field(default_factory=set)
    stability: Optional[CardStability] = None
    telemetry: Optional[dict] = None  # telemetry.region.region_report over the soak
    exit_error: Optional[str] = None


@dataclass
class SoakResult:
    asked_s: float
    ran_s: float
    cards: list  # CardSoak
    mismatches: list  # Mismatch
    rate_workload: Optional[str]
    interrupted: Optional[str] = None
    cut_short: Optional[str] = None
    files: list = field(default_factory=list)
    deterministic_env: dict = field(default_factory=dict)

    @property
    def flags(self) -> list[str]:
        return [f"card {c.card}: {flag}" for c in self.cards if c.stability
                for flag in c.stability.flags]

    @property
    def failures(self) -> list[str]:
        """What fails the soak whatever the model: a result that did not repeat, a worker
        that died."""
        return [*(m.describe() for m in self.mismatches),
                *(f"card {c.card}: {c.exit_error}" for c in self.cards if c.exit_error)]

    def as_dict(self) -> dict:
        return {
            "asked_s": self.asked_s, "ran_s": round(self.ran_s, 3),
            "interrupted": self.interrupted, "cut_short": self.cut_short,
            "rate_workload": self.rate_workload, "deterministic_env": self.deterministic_env,
            "failures": self.failures, "flags": self.flags,
            "mismatches": [vars(m) for m in self.mismatches],
            "cards": [{
                "card": c.card, "name": c.name, "load_s": c.load_s, "threads": c.threads,
                "workloads": c.workloads, "no_model": c.no_model, "iterations": c.iterations,
                "exit_error": c.exit_error, "nondeterministic": sorted(c.nondeterministic),
                "notes": sorted(c.notes),
                "stability": None if c.stability is None else vars(c.stability),
                "telemetry": c.telemetry,
                "rates": {w: [[round(t, 3), r] for t, r in pts] for w, pts in c.points.items()},
            } for c in self.cards],
        }


class _Follower:
    """Reads a worker's JSON lines as they grow; a line still being written waits."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset, self.pending = path, 0, b""

    def new_records(self) -> list[dict]:
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self.offset)
                data = handle.read()
        except FileNotFoundError:
            return []
        self.offset += len(data)
        lines = (self.pending + data).split(b"\n")
        self.pending = lines.pop()
        records = []
        for line in lines:
            try:
                records.append(json.loads(line))
            except ValueError:
                continue  # a line cut by a kill: the reader of the log skips it too
        return records


class SoakRun:
    """One soak: `run()` it once. `progress` gets a line now and then; `log` gets each
    card's minute line (the session's results log); `sampler` is a running
    telemetry.sampler.TelemetrySampler reading the cards (None: the run reads them itself)."""

    def __init__(self, plan: SoakPlan, *, progress: Callable[[str], None] = lambda _: None,
                 log: Callable[..., None] = lambda kind, **fields: None,
                 sampler: Optional[Any] = None) -> None:
        from pytest_ascend.reports.results_log import ResultsLog

        self.plan, self.progress, self.log = plan, progress, log
        plan.out_dir.mkdir(parents=True, exist_ok=True)
        self.minute_log = ResultsLog(plan.out_dir / "soak.jsonl")
        self.cards = {card.index: CardSoak(card.index, card.name) for card in plan.cards}
        self.chips = {card.index: card.name for card in plan.cards}
        self.check = AgreementCheck(self.chips)
        self.processes: dict[int, subprocess.Popen] = {}
        self.followers: dict[int, _Follower] = {}
        self.done: set[int] = set()
        self.records: list[dict] = []  # every iteration record, for the minute lines
        self.go_epoch: Optional[float] = None
        self.go_perf = 0.0
        self.until = 0.0
        self.cut_short: Optional[str] = None
        self.minutes_logged = 0
        self.longest_gap_s = 0.0  # between two records of a card: its last iteration's bound
        self.last_at: dict[int, float] = {}
        self._own_sampler = sampler is None
        self.sampler = sampler

    # Starting ---------------------------------------------------------------------------

    def _argv(self, card: Any) -> list[str]:
        plan = self.plan
        argv = [sys.executable, "-m", "pytest_ascend.soak.worker", "--card", str(card.index),
                "--device", card.platform.kind, "--dtype", plan.dtype,
                "--out", str(self._records_path(card.index))]
        if plan.model and not plan.no_model:
            argv += ["--model", plan.model]
        if plan.no_model:
            argv += ["--no-model", plan.no_model]
        if plan.cache_dir is not None:
            argv += ["--cache", str(plan.cache_dir)]
        if plan.base_model:
            argv += ["--base-model", plan.base_model]
        if plan.trust_remote_code:
            argv.append("--trust-remote-code")
        if card.platform.host_stand_ins:  # stand-ins share the host's cores evenly
            argv += ["--threads", str(max(1, (os.cpu_count() or 1) // len(plan.cards)))]
        return argv

    def _records_path(self, index: int) -> Path:
        return self.plan.out_dir / f"card-{index}.jsonl"

    def _start(self) -> None:
        for card in self.plan.cards:
            env = {**os.environ, **card.platform.deterministic_env}
            env.pop(PLANT_ENV, None)
            if card.index in self.plan.plants:
                env[PLANT_ENV] = self.plan.plants[card.index]
            self._records_path(card.index).unlink(missing_ok=True)
            stderr = open(self.plan.out_dir / f"card-{card.index}.stderr", "wb")
            self.processes[card.index] = subprocess.Popen(
                self._argv(card), stdin=subprocess.PIPE, stdout=stderr, stderr=stderr,
                start_new_session=True, preexec_fn=die_with_parent, env=env)
            stderr.close()
            self.followers[card.index] = _Follower(self._records_path(card.index))
        if self._own_sampler:
            from pytest_ascend.telemetry.sampler import TelemetrySampler

            self.sampler = TelemetrySampler(
                [card.platform.telemetry(card) for card in self.plan.cards]).start()
        decode = "no decode: " + self.plan.no_model if self.plan.no_model else (
            "decode, " if self.plan.model else "no model: no decode, ")
        self.progress(f"soak: one worker per card, {len(self.plan.cards)} loading ({decode}"
                      f"matmul, HBM patterns)")

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.plan.ready_timeout_s
        ready: set[int] = set()
        said = time.monotonic()
        while len(ready) < len(self.cards):
            for index in self.cards:
                for record in self.followers[index].new_records():
                    if record["type"] == "failed":
                        raise SoakError(f"card {index}'s soak worker failed to start: "
                                        f"{record['error']}")
                    if record["type"] == "ready":
                        self._take_ready(index, record)
                        ready.add(index)
                if index not in ready and self.processes[index].poll() is not None:
                    raise SoakError(f"card {index}'s soak worker exited "
                                    f"({self.processes[index].returncode}) before it was "
                                    f"ready: {self._stderr_tail(index)}")
            if time.monotonic() > deadline:
                late = sorted(set(self.cards) - ready)
                raise SoakError(f"card(s) {late} not ready after {self.plan.ready_timeout_s:g} "
                                f"s of loading")
            if time.monotonic() - said > 30:
                said = time.monotonic()
                self.progress(f"soak: {len(ready)} of {len(self.cards)} card(s) ready")
            time.sleep(POLL_S)

    def _take_ready(self, index: int, record: dict) -> None:
        card = self.cards[index]
        card.pid, card.load_s, card.threads = record["pid"], record["load_s"], record["threads"]
        card.workloads, card.no_model = record["workloads"], record.get("no_model")
        card.nondeterministic.update(record.get("nondeterministic") or ())
        self.progress(f"soak: card {index} ready in {card.load_s:.1f} s (pid {card.pid})")

    def _go(self) -> None:
        now = time.time()
        self.until = now + self.plan.seconds
        if self.plan.ends_by is not None and self.plan.ends_by < self.until:
            self.until = self.plan.ends_by
            self.cut_short = (f"the soak was cut to {self.until - now:.0f} s of the "
                              f"{self.plan.seconds:.0f} s asked: {self.plan.ends_by_why}")
            self.progress(self.cut_short)
        self.go_epoch, self.go_perf = now, time.perf_counter()
        for process in self.processes.values():
            process.stdin.write(f"go {self.until!r}\n".encode())
            process.stdin.flush()

    # Following --------------------------------------------------------------------------

    def _follow(self) -> None:
        said = time.monotonic()
        while len(self.done) < len(self.cards):
            self._drain()
            for index, process in self.processes.items():
                if index not in self.done and process.poll() is not None:
                    self._drain()
                    if index not in self.done:
                        self.cards[index].exit_error = (
                            f"its worker exited ({process.returncode}) mid-soak: "
                            f"{self._stderr_tail(index)}")
                        self.done.add(index)
            if time.time() > self.until + 2 * self.longest_gap_s + 60:
                for index in set(self.cards) - self.done:
                    self.cards[index].exit_error = "its worker did not stop after the soak"
                break
            self._log_minutes(final=False)
            if time.monotonic() - said > self.plan.minute_s:
                said = time.monotonic()
                self.progress(self._progress_line())
            time.sleep(POLL_S)

    def _drain(self) -> None:
        for index, follower in self.followers.items():
            for record in follower.new_records():
                if record["type"] == "iteration":
                    self._take_iteration(index, record)
                elif record["type"] == "done":
                    self.done.add(index)

    def _take_iteration(self, index: int, record: dict) -> None:
        card = self.cards[index]
        self.longest_gap_s = max(self.longest_gap_s,
                                 record["at"] - self.last_at.get(index, record["at"]))
        self.last_at[index] = record["at"]
        at_s = record["at"] - (self.go_epoch or record["at"])
        card.iterations = max(card.iterations, record["iteration"] + 1)
        card.points.setdefault(record["workload"], []).append((at_s, record["rate"]))
        card.nondeterministic.update(record.get("nondeterministic") or ())
        card.notes.update(record.get("notes") or ())
        for mismatch in self.check.add(record):
            self.progress(f"SOAK MISMATCH: {mismatch.describe()}")
        self.records.append({key: record[key] for key in
                             ("card", "workload", "iteration", "at", "rate", "seconds")})

    def _progress_line(self) -> str:
        elapsed = time.time() - (self.go_epoch or time.time())
        workload = self._rate_workload()
        rates = ", ".join(
            f"card {c.card} {median(r for _, r in c.points[workload][-10:]) * _LEGIBLE_RATE[workload][1]:.4g}"
            for c in self.cards.values() if workload and c.points.get(workload))
        return (f"soak: {elapsed:.0f} s of {self.until - (self.go_epoch or 0):.0f} s; "
                f"{_LEGIBLE_RATE[workload][0] if workload else 'no rate'}: {rates or '-'}; "
                f"{len(self.check.mismatches)} mismatch(es)")

    def _rate_workload(self) -> Optional[str]:
        return next((w for w in RATE_WORKLOADS
                     if any(w in c.points for c in self.cards.values())), None)

    # Minute lines -----------------------------------------------------------------------

    def _log_minutes(self, final: bool) -> None:
        """A line per card for every minute that has ended; at the end, the part minute
        too."""
        if self.go_epoch is None:
            return
        now = time.time() - self.go_epoch
        while (self.minutes_logged + 1) * self.plan.minute_s <= now or (
                final and self.minutes_logged * self.plan.minute_s < now):
            start = self.minutes_logged * self.plan.minute_s
            end = min(start + self.plan.minute_s, now)
            for index in self.cards:
                self._minute_line(index, self.minutes_logged, start, end)
            self.minutes_logged += 1

    def _minute_line(self, index: int, minute: int, start: float, end: float) -> None:
        records = [r for r in self.records if r["card"] == index
                   and start <= r["at"] - self.go_epoch < end]
        rates = {}
        for workload in RATE_WORKLOADS:
            found = [r["rate"] for r in records if r["workload"] == workload]
            if found:
                rates[f"{workload}_rate"] = median(found)
        fields = dict(
            card=index, name=self.cards[index].name, minute=minute,
            from_s=round(start, 3), to_s=round(end, 3), partial=end - start < self.plan.minute_s,
            iterations=len({r["iteration"] for r in records}), **rates,
            mismatches=sum(1 for m in self.check.mismatches if m.card == index),
            telemetry=self._telemetry(index, start, end))
        self.minute_log.write("soak_minute", **fields)
        self.log("soak_minute", **fields)

    def _telemetry(self, index: int, start: float, end: float) -> Optional[dict]:
        from pytest_ascend.telemetry.region import region_report

        readings = self._readings(index)
        if not readings:
            return None
        return region_report(readings, self.go_perf + start, self.go_perf + end)

    def _readings(self, index: int) -> list:
        card = next(c for c in self.plan.cards if c.index == index)
        try:
            return self.sampler.readings(card_label(card)) if self.sampler else []
        except KeyError:
            return []

    # Ending -----------------------------------------------------------------------------

    def _stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                stop_process_tree(process.pid, grace_s=STOP_GRACE_S)
            process.wait()
            if process.stdin:
                process.stdin.close()
        if self._own_sampler and self.sampler is not None:
            self.sampler.stop()

    def _stderr_tail(self, index: int) -> str:
        from pytest_ascend.errors import one_line

        try:
            text = (self.plan.out_dir / f"card-{index}.stderr").read_text(errors="replace")
        except OSError:
            return "(no output)"
        lines = [line for line in text.strip().splitlines() if line.strip()]
        return one_line(lines[-1]) if lines else "(no output)"

    def _result(self, interrupted: Optional[str]) -> SoakResult:
        workload = self._rate_workload()
        ran = (min(time.time(), self.until) - self.go_epoch) if self.go_epoch else 0.0
        if workload:
            verdicts = judge_stability(
                {i: c.points.get(workload, []) for i, c in self.cards.items()}, self.chips,
                window_s=window_seconds(self.plan.seconds), drift=self.plan.drift,
                tolerance=self.plan.tolerance, what=_LEGIBLE_RATE[workload][0])
            for index, verdict in verdicts.items():
                self.cards[index].stability = verdict
        for index, card in self.cards.items():
            if self.go_epoch is not None:
                card.telemetry = self._telemetry(index, 0.0, max(ran, 0.0))
        envs = {key: value for card in self.plan.cards
                for key, value in card.platform.deterministic_env.items()}
        return SoakResult(self.plan.seconds, max(ran, 0.0), list(self.cards.values()),
                          list(self.check.mismatches), workload, interrupted, self.cut_short,
                          deterministic_env=envs)

    def _write(self, result: SoakResult) -> None:
        from pytest_ascend.soak.plot import write_card_plot

        path = self.plan.out_dir / "soak.json"
        temporary = path.with_suffix(".json.tmp")
        temporary.write_text(json.dumps(result.as_dict(), indent=1, default=str))
        os.replace(temporary, path)
        result.files.append(path)
        for card in result.cards:
            try:
                result.files.append(write_card_plot(
                    card, self._readings(card.card), self.go_perf,
                    self.plan.out_dir / f"soak-card{card.card}.png"))
            except ValueError as exc:
                self.progress(f"soak: card {card.card}'s picture not written: {exc}")
        result.files.append(self.minute_log.path)

    def run(self) -> SoakResult:
        interrupted: Optional[str] = None
        try:
            self._start()
            self._wait_ready()
            self._go()
            self._follow()
        except SoakError:
            self._stop()
            raise
        except BaseException as exc:
            interrupted = (f"interrupted ({type(exc).__name__}"
                           f"{': ' + str(exc) if str(exc) else ''}) after "
                           f"{time.time() - (self.go_epoch or time.time()):.0f} s")
            raise
        finally:
            if interrupted is not None or self.go_epoch is not None:
                self._stop()
                self._drain()
                self._log_minutes(final=True)
                self.result = self._result(interrupted)
                self._write(self.result)
            self.minute_log.close()
        return self.result


def run_soak(plan: SoakPlan, **kwargs: Any) -> SoakResult:
    """Run `plan` (see SoakRun for the keywords); on Ctrl-C or any other exception the
    workers are stopped and what was measured is written before the exception goes on."""
    return SoakRun(plan, **kwargs).run()
