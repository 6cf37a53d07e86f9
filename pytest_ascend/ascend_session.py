"""The one owner of a pytest-ascend session's state, as pytest-benchmark's BenchmarkSession is
of a benchmark run.

Everything the suite decides, loads or measures in a session lives here: the plan (cards,
dtype, model, placement), the model and tokenizer, the device limits, the SGLang server, the
box's findings, the results log, the watchdog and why the run ended early. Hooks and fixtures
only delegate to it, so what a run reports no longer depends on which fixtures happened to
run: the `ascend` block, the header and the results log all ask this object.

The object is registered as a plugin under PLUGIN_NAME (`of(config)` finds it). It knows
pytest only as far as it must (the terminal and the config); what it decides and measures is
done by modules that know nothing of pytest. Heavy modules are imported on first use, so
`pytest --help` and foreign projects' sessions stay free of torch.
"""

from __future__ import annotations

import os
import platform
import signal
import sys
import threading
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import pytest

from pytest_ascend.report_guard import ReportGuard
from pytest_ascend.settings import AscendSettings

PLUGIN_NAME = "ascend-session"


class SessionUnusable(Exception):
    """A part of the session cannot be had here; the message is one line for the user."""


def of(config: pytest.Config) -> "AscendSession":
    """The session owner registered for `config`."""
    return config.pluginmanager.get_plugin(PLUGIN_NAME)


class AscendSession:
    def __init__(self, config: pytest.Config, settings: AscendSettings) -> None:
        self.config = config
        self.settings = settings
        self.guard = ReportGuard(config)
        self.results_log: Optional[Any] = None  # reports.results_log.ResultsLog
        self.box: Optional[Any] = None  # box.findings.BoxFindings, once a box test ran
        self.server: Optional[Any] = None  # serving.sglang_server.SessionServer, once used
        self.hang: Optional[Any] = None  # watchdog.Hang, when the watchdog ended the run
        self.terminated = False  # SIGTERM stopped the run
        self.xdist_refusal: Optional[str] = None
        self._plan: Optional[Any] = None  # session.SessionPlan
        self._models: dict[str, Any] = {}  # spec -> model.loading.ModelUnderTest
        self._limits: Optional[Any] = None
        self._environment: Optional[dict] = None
        self._samplers: dict[str, Any] = {}  # nodeid -> measure.memory.MemorySampler
        self.cards_watch: Optional[Any] = None  # telemetry.watch.CardWatch, in a suite run
        self.health: Optional[Any] = None  # telemetry.health.HealthVerdict, at the end
        self._telemetry: dict[str, dict] = {}  # nodeid -> its region's telemetry
        self._timed: dict[str, tuple[float, float]] = {}  # pytest-timeout: nodeid -> (at, s)
        self._watchdog: Optional[Any] = None
        self._restore_sigterm: Optional[Callable[[], None]] = None
        self._start_logged = False
        self._suite_total = 0
        self._suite_done: set[str] = set()
        self._suite_started = 0.0
        self._eta_said = 0.0
        self._profile_session: Optional[str] = None  # the traces' folder name, on first use

    # The plan ---------------------------------------------------------------------------

    @property
    def planned(self) -> Optional[Any]:
        """The plan, if one was made (None in a session that has had no need of one)."""
        return self._plan

    def plan(self, *, announce: bool) -> Any:
        """The session plan, made on first need; a setup problem is a one-line usage error.
        A plan made after the header was printed (`announce`) writes the header's lines."""
        from pytest_ascend.session import SessionSetupError, plan_session

        if self._plan is None:
            self.stop_on_sigterm_as_on_ctrl_c()
            try:
                self._plan = plan_session(self.settings)
            except SessionSetupError as exc:
                raise pytest.UsageError(str(exc)) from None
            if announce:
                for line in self.header_lines():
                    self.write_line(line)
            self._log_start()
        return self._plan

    # What the tests share, made on first need -------------------------------------------

    def model(self, spec: Optional[str] = None) -> Any:
        """The session's model (or the draft `spec`), loaded once (ModelUnderTest)."""
        from pytest_ascend.model.loading import ModelLoadError, ModelSpecError, load_under_test

        plan = self.plan(announce=True)
        spec = plan.settings.model if spec is None else spec
        if spec not in self._models:
            try:
                self._models[spec] = load_under_test(
                    spec, plan.device, plan.dtype, cache_dir=plan.settings.cache,
                    trust_remote_code=plan.settings.trust_remote_code,
                    base_spec=plan.settings.model, progress=self.progress)
            except (ModelSpecError, ModelLoadError) as exc:
                raise SessionUnusable(str(exc)) from None
        return self._models[spec]

    def tokenizer(self) -> Any:
        return self.model().tokenizer

    def limits(self) -> Any:
        """The device's copy bandwidth and matmul rate in the session dtype, measured once."""
        from pytest_ascend.measure.roofline import measure_device_limits
        from pytest_ascend.reports.progress import limits_line

        if self._limits is None:
            plan = self.plan(announce=True)
            self.progress("measuring device copy bandwidth and matmul rate")
            self._limits = measure_device_limits(plan.device, plan.dtype)
            self.progress(limits_line(self._limits))
        return self._limits

    def environment(self) -> dict:
        """The run's environment facts, gathered once."""
        from pytest_ascend.reports.environment import gather_environment

        if self._environment is None:
            self._environment = gather_environment(self.plan(announce=True).device)
        return self._environment

    @contextmanager
    def launched_server(self, workdir: Path) -> Iterator[Any]:
        """The session's SGLang server (connected or launched) for as long as the block runs;
        a launched one's whole process tree is stopped when it ends, however it ends."""
        from pytest_ascend.serving.sglang_server import ServerError, session_server

        try:
            with session_server(self.plan(announce=True), workdir, self.progress) as server:
                self.server = server
                yield server
        except ServerError as exc:
            raise SessionUnusable(str(exc)) from None

    def soak(self, item: pytest.Item, out_dir: Path) -> Any:
        """The soak (--ascend-soak) on every selected card, for `item`: the session's model
        and dtype, its cards' telemetry, a results-log line per card per minute. Under
        pytest-timeout it stops early enough to write its results before the timeout."""
        from pytest_ascend.soak.runner import SoakError, SoakPlan, run_soak

        plan = self.plan(announce=True)
        settings = self.settings
        ends_by, why = None, ""
        if item.nodeid in self._timed:
            armed_at, timeout_s = self._timed[item.nodeid]
            ends_by = armed_at + timeout_s - max(30.0, 0.05 * timeout_s)
            why = (f"pytest-timeout gives this test {timeout_s:g} s (raise --timeout or its "
                   f"timeout marker for a longer soak)")
        soak_plan = SoakPlan(
            plan.cards, settings.soak, plan.dtype, out_dir, model=settings.model,
            no_model=plan.single_card_problem, cache_dir=settings.cache,
            trust_remote_code=settings.trust_remote_code, drift=settings.soak_drift,
            tolerance=settings.card_tolerance, ends_by=ends_by, ends_by_why=why)
        try:
            return run_soak(soak_plan, progress=self.progress, log=self.log,
                            sampler=self.cards_watch.sampler if self.cards_watch else None)
        except SoakError as exc:
            raise SessionUnusable(str(exc)) from None

    def watch_timed_region(self, item: pytest.Item, fixture: Any) -> None:
        """Under --ascend-profile, as a selected test's benchmark fixture is made: it will
        remember what it times (profiling.capture), for `profile_timed_region`."""
        from pytest_ascend.profiling.capture import record_timed_region, selected

        expression = self.settings.profile
        names = [*item.nodeid.replace("::", "/").split("/"),
                 *(mark.name for mark in item.iter_markers())]
        if expression is not None and selected(expression, names):
            record_timed_region(fixture)

    def profile_timed_region(self, item: pytest.Item) -> None:
        """After a selected test passed: its timed region again under the platform's
        profiler, the trace under the benchmark storage, each operator's self time in the
        benchmark's extra_info (the rounds it stores were timed unprofiled)."""
        from pytest_ascend.profiling.capture import profile_call, trace_folder

        fixture = getattr(item, "funcargs", {}).get("benchmark")
        region = getattr(fixture, "timed_region", None)
        if region is None:
            return
        try:
            base = self._profile_base()
        except SessionUnusable as exc:
            pytest.fail(str(exc), pytrace=False)
        folder = trace_folder(base, self._profile_stamp, item.nodeid)
        device = self.plan(announce=True).device
        profile = profile_call(device.platform, device, region, folder, base)
        fixture.extra_info["profile"] = profile.to_json()
        top = ", ".join(f"{name} {op.self_us:.0f} us" for name, op in sorted(
            profile.operators.items(), key=lambda entry: -entry[1].self_us)[:3])
        self.progress(f"profiled {item.nodeid}: {len(profile.operators)} operators ({top}); "
                      f"trace {base / profile.trace if profile.trace else '-'}")

    @property
    def _profile_stamp(self) -> str:
        if self._profile_session is None:
            self._profile_session = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + \
                f"-{os.getpid()}"
        return self._profile_session

    def _profile_base(self) -> Path:
        """The benchmark storage's folder (file storage), else --ascend-report-dir."""
        storage = str(self.config.getoption("benchmark_storage", None) or "")
        if storage.startswith("file://"):
            return Path(storage[len("file://"):])
        if storage and "://" not in storage:
            return Path(storage)
        if self.settings.report_dir is not None:
            return self.settings.report_dir
        raise SessionUnusable(f"--ascend-profile stores traces beside the benchmark runs, and "
                              f"--benchmark-storage {storage} is not a folder: pass "
                              f"--ascend-report-dir=DIR for the traces")

    def eval_questions(self) -> list:
        """The --ascend-eval questions this session asks: all, or the first --ascend-eval-limit."""
        evalset = self.plan(announce=True).evalset
        return list(evalset.questions[:self.settings.eval_limit])

    def judge_accuracy(self, results: Any, source: str) -> Any:
        """Record (--ascend-golden-record) and compare (--ascend-golden) a test's answers, the
        stack named by this session's environment, dtype and `source` (the model, a server)."""
        from pytest_ascend.accuracy.compare import record_and_compare
        from pytest_ascend.accuracy.records import RecordError, stack_key

        plan = self.plan(announce=True)
        settings = self.settings
        environment = self.environment()
        model = self._models.get(settings.model)
        stack = stack_key(environment, plan.dtype) + ("" if source == "model" else f"-{source}")
        try:
            return record_and_compare(
                plan.evalset, results, stack=stack, environment=environment,
                model={"spec": settings.model, "name": model.name if model else settings.model},
                record_dir=settings.golden_record, golden_dir=settings.golden,
                baseline=settings.eval_baseline, alpha=settings.eval_alpha,
                floor=settings.eval_floor, shown=settings.eval_shown)
        except RecordError as exc:
            raise SessionUnusable(str(exc)) from None

    def timed_by_pytest_timeout(self, nodeid: str, timeout_s: float) -> None:
        """pytest-timeout armed its timer for `nodeid` now, for `timeout_s`."""
        self._timed[nodeid] = (time.time(), timeout_s)

    def call_budget_s(self, item: pytest.Item) -> float:
        """What the watchdog allows a suite test's call when pytest-timeout times nothing:
        --ascend-watchdog, the chip's compile allowance, and a soak's length and loading."""
        from pytest_ascend.soak.runner import READY_TIMEOUT_S

        budget = self.settings.watchdog + self.plan(announce=True).compile_allowance_s
        if self.settings.soak and "ascend_soak" in getattr(item, "fixturenames", ()):
            budget += self.settings.soak + READY_TIMEOUT_S
        return budget

    def box_findings(self) -> Any:
        from pytest_ascend.box.findings import BoxFindings

        if self.box is None:
            self.box = BoxFindings()
        return self.box

    def memory_sampler(self, item: pytest.Item) -> Any:
        """A MemorySampler on the device under test for `item`'s whole test."""
        from pytest_ascend.measure.memory import MemorySampler

        sampler = MemorySampler(self.plan(announce=True).device, self.settings.memory_interval)
        self._samplers[item.nodeid] = sampler.start()
        return sampler

    # Progress of a long session --------------------------------------------------------

    def suite_collected(self, runnable: int) -> None:
        """`runnable` suite tests will run (those not skipped at collection): from here on
        every card is watched."""
        self._suite_total = runnable
        self._suite_started = self._eta_said = time.monotonic()
        if runnable:
            self._watch_cards()

    # Telemetry and the health gate ------------------------------------------------------

    def _watch_cards(self) -> None:
        """Start reading every selected card. Telemetry must never cost a run its results:
        a reader that cannot start is said in one line, and the suite goes on without."""
        from pytest_ascend.telemetry.watch import CardWatch

        if self.cards_watch is not None or self._plan is None:
            return
        try:
            readers = [card.platform.telemetry(card) for card in self._plan.cards]
            self.cards_watch = CardWatch(readers, self.settings.telemetry_interval)
        except Exception as exc:  # noqa: BLE001
            self.progress(f"telemetry off: {type(exc).__name__}: {exc}")
            return
        for line in self.cards_watch.header_lines():
            self.progress(line)

    @contextmanager
    def watched_region(self, item: pytest.Item) -> Iterator[None]:
        """Around a suite test's call: its region's telemetry beside its results, in its
        benchmark's extra_info["telemetry"] (energy per decoded token as a metric of its
        own) and in its metrics."""
        watch = self.cards_watch
        if watch is None:
            yield
            return
        start = watch.begin()
        try:
            yield
        finally:
            fixture = getattr(item, "funcargs", {}).get("benchmark")
            extra = fixture.extra_info if fixture is not None else {}
            telemetry = watch.end(item.nodeid, start, extra)
            self._telemetry[item.nodeid] = telemetry
            if fixture is not None:
                extra["telemetry"] = telemetry
                if "energy_per_token_j" in telemetry:
                    extra["energy_per_token_j"] = telemetry["energy_per_token_j"]

    def judge_health(self, exitstatus: int) -> int:
        """At the session's end: each card's health against its start. A card that failed
        fails the session, whatever its tests said."""
        if self.cards_watch is None or self.health is not None:
            return exitstatus
        self.health = self.cards_watch.finish()
        if self.settings.report_dir is not None:
            try:
                path = self.cards_watch.write_plot(self.settings.report_dir / "telemetry.png")
                self.progress(f"telemetry over time: {path}")
            except (OSError, ValueError) as exc:
                self.progress(f"telemetry picture not written: {exc}")
        for line in self.health.notes:
            self.progress(f"health: {line}")
        for line in self.health.failures:
            self.progress(f"HEALTH GATE FAILED: {line}")
        self.log("health", failures=self.health.failures, notes=self.health.notes)
        if self.health.failed and exitstatus == pytest.ExitCode.OK:
            return pytest.ExitCode.TESTS_FAILED
        return exitstatus

    def suite_test_finished(self, nodeid: str) -> None:
        """Count a finished suite test; say where the session stands at most every
        ETA_EVERY_S seconds, so a run of hours shows its pace and an estimate of the rest."""
        from pytest_ascend.reports.progress import ETA_EVERY_S, eta_line

        if not self._suite_total or nodeid in self._suite_done:
            return
        self._suite_done.add(nodeid)
        now = time.monotonic()
        done = len(self._suite_done)
        if now - self._eta_said >= ETA_EVERY_S and done < self._suite_total:
            self._eta_said = now
            self.progress(eta_line(done, self._suite_total, now - self._suite_started))

    # Reports ----------------------------------------------------------------------------

    def header_lines(self) -> list[str]:
        from pytest_ascend.reports.provenance import header_lines

        return header_lines(self._plan) if self._plan is not None else []

    def ascend_block(self) -> Optional[dict]:
        """The run's provenance block (None in a session that never planned: nothing to say)."""
        from pytest_ascend.reports.provenance import ascend_block

        if self._plan is None:
            return None
        model = self._models.get(self._plan.settings.model)
        block = ascend_block(self._plan, self.environment(), model, self._limits,
                             self.server.facts if self.server is not None else None)
        if self.health is not None:
            block["health"] = {"failures": self.health.failures, "notes": self.health.notes}
        return block

    @pytest.hookimpl(optionalhook=True)
    def pytest_json_modifyreport(self, json_report: dict) -> None:
        """pytest-json-report 1.5 with pytest-metadata 3 writes `"environment": {}`: fill it
        with pytest-metadata's facts and the `ascend` block."""
        environment = dict(json_report.get("environment") or {})
        try:
            from pytest_metadata.plugin import metadata_key

            environment.update(self.config.stash.get(metadata_key, {}))
        except ImportError:
            pass
        block = self.ascend_block()
        if block is not None:
            environment["ascend"] = block
        json_report["environment"] = environment

    def test_metrics(self, item: pytest.Item) -> Optional[dict]:
        """What a test measured: its `record_property` values, its `benchmark.extra_info`,
        and its memory sampler's series."""
        metrics: dict[str, Any] = dict(getattr(item, "user_properties", ()))
        if item.nodeid in self._telemetry:
            metrics["telemetry"] = self._telemetry[item.nodeid]
        fixture = getattr(item, "funcargs", {}).get("benchmark")
        if fixture is not None:
            metrics.update(fixture.extra_info)
        sampler = self._samplers.get(item.nodeid)
        if sampler is not None:
            metrics["memory_samples"] = sampler.series()
        return metrics or None

    def server_log_tail(self) -> Optional[str]:
        return self.server.log_tail() if self.server is not None else None

    def open_results_log(self, path: Path) -> None:
        from pytest_ascend.reports.results_log import ResultsLog

        try:
            self.results_log = ResultsLog(path)
        except OSError as exc:
            raise pytest.UsageError(
                f"--ascend-results-log {path}: cannot append to it ({exc.strerror}); give a "
                f"writable path") from None
        self.stop_on_sigterm_as_on_ctrl_c()
        if self._plan is not None:
            self._log_start()

    def log(self, kind: str, **fields: Any) -> None:
        """A record into the results log, if there is one. The first write that fails (a full
        disk) says so once, at once; the tests go on and the summary counts what was lost."""
        log = self.results_log
        if log is None:
            return
        if kind != "session_start":
            self._log_start()
        failed_before = log.failure is not None
        log.write(kind, **fields)
        if log.failure is not None and not failed_before:
            self.write_line(f"pytest-ascend: WARNING: --ascend-results-log {log.path}: "
                            f"{log.failure}; no more records go there, the tests go on")

    def _log_start(self) -> None:
        """The results log's first record, once the plan is known (or, in a session without
        one, before its first other record): so it names the model and the cards."""
        if self.results_log is None or self._start_logged:
            return
        self._start_logged = True
        self.log("session_start", args=list(self.config.invocation_params.args),
                 host=platform.node(), ascend=self.ascend_block())

    def end_status(self) -> Optional[str]:
        """Why the session ended early, for the results log's last line."""
        if self.hang is not None:
            return f"aborted by a hang: {self.hang.describe()}"
        if self.terminated:
            return "terminated by SIGTERM"
        return self.xdist_refusal

    def finish(self, exitstatus: int) -> None:
        """The results log's last line, with the final status, and the log closed."""
        if self.results_log is None:
            return
        self.log("session_end", exitstatus=int(exitstatus), status=self.end_status(),
                 ascend=self.ascend_block())
        self.results_log.close()

    def summary_lines(self) -> list[str]:
        """Reports that were not (fully) written, and why a run did not run, one line each."""
        self.guard.check_json_report()
        log = self.results_log
        if log is not None and log.failure is not None:
            self.guard.failures.append(f"the results log {log.path} is incomplete: {log.lost} "
                                       f"record(s) not written ({log.failure})")
        lines = [] if self.xdist_refusal is None else [self.xdist_refusal]
        return [f"pytest-ascend: {line}" for line in [*lines, *self.guard.failures]]

    # Terminal ---------------------------------------------------------------------------

    def write_line(self, line: str) -> None:
        """Straight to the terminal on a line of its own, past output capture (fixtures and
        tests run captured)."""
        config = self.config
        if config.pluginmanager.get_plugin("terminalreporter") is None:
            return
        writer = config.get_terminal_writer()
        capture = config.pluginmanager.get_plugin("capturemanager")
        with capture.global_and_fixture_disabled() if capture else nullcontext():
            if writer.width_of_current_line:  # mid-way through a row of progress dots
                writer.line()
            writer.line(line)

    def progress(self, message: str) -> None:
        """The domain code's progress messages: one `pytest-ascend:` line each."""
        self.write_line(f"pytest-ascend: {message}")

    # Hangs and signals ------------------------------------------------------------------

    def watchdog(self, session: pytest.Session) -> Any:
        from pytest_ascend.watchdog import Watchdog

        if self._watchdog is None:
            self._watchdog = Watchdog(lambda hang: self._abort(session, hang))
        return self._watchdog

    def armed_watchdog(self) -> Optional[Any]:
        return self._watchdog

    def _abort(self, session: pytest.Session, hang: Any) -> None:
        """On the watchdog's thread, the main one blocked in native code: record the hung
        test, write every report for what finished (the session-end hooks, as pytest would
        run them), and end the process with EXIT_HUNG."""
        import os

        from pytest_ascend.watchdog import EXIT_HUNG

        self.hang = hang
        capture = self.config.pluginmanager.get_plugin("capturemanager")
        try:
            if capture is not None:
                capture.suspend_global_capture(in_=True)
            sys.stderr.write(f"\npytest-ascend: {hang.describe()}; writing the reports of the "
                             f"tests that finished, then exiting with {EXIT_HUNG}\n")
            self.log("test", nodeid=hang.nodeid, when=hang.phase, outcome="timeout",
                     duration_s=hang.seconds, message=hang.describe(), stacks=hang.stacks)
            session.exitstatus = EXIT_HUNG
            self.config.hook.pytest_sessionfinish(session=session, exitstatus=EXIT_HUNG)
        except BaseException as exc:  # the exit below must happen whatever a report did
            sys.stderr.write(f"pytest-ascend: while writing the reports: {exc!r}\n")
        finally:
            sys.stderr.flush()
            sys.stdout.flush()
            os._exit(EXIT_HUNG)

    def stop_on_sigterm_as_on_ctrl_c(self) -> None:
        """SIGTERM is what cron timeouts, systemd, Jenkins and Slurm send; by default it ends
        the process at once and every report of the night is lost. Raised as
        KeyboardInterrupt it stops the run as Ctrl-C does: fixtures (a launched server) torn
        down, every report written. A second SIGTERM finds the old handler back and ends the
        process as before. Only the main thread can install it, and a handler someone else
        set is left alone."""
        if self._restore_sigterm is not None or \
                threading.current_thread() is not threading.main_thread():
            return
        previous = signal.getsignal(signal.SIGTERM)
        if previous is not signal.SIG_DFL:
            return

        def on_sigterm(signum: int, frame: Any) -> None:
            signal.signal(signal.SIGTERM, previous)
            self.terminated = True
            raise KeyboardInterrupt("SIGTERM")

        signal.signal(signal.SIGTERM, on_sigterm)
        self._restore_sigterm = lambda: signal.signal(signal.SIGTERM, previous)

    def close(self) -> None:
        """At unconfigure: the watchdog's thread ends (a process running several sessions, as
        pytester does, would otherwise keep one per session), SIGTERM gets its handler back."""
        if self._watchdog is not None:
            self._watchdog.close()
        if self.cards_watch is not None and self.health is None:
            self.cards_watch.sampler.stop()
        if self._restore_sigterm is not None:
            self._restore_sigterm()
            self._restore_sigterm = None
