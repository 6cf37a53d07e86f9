"""pytest-ascend's pytest hooks: options, markers and their gating, the header, the
watchdog, reports.

Read top-down: options -> configure (settings) -> session start (device, dtype, model
checks) -> collection (gating) -> header -> running a test (the watchdog) -> reports. The
fixtures live in fixtures.py and the state both share in stash.py; everything that decides
or measures lives in modules that know nothing of pytest. No torch import at module level,
so `pytest --help` stays fast.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from contextlib import contextmanager
from typing import Any, Iterator, Optional

import pytest

from pytest_ascend import stash
from pytest_ascend.report_guard import ReportGuard
from pytest_ascend.settings import (
    OPTIONS,
    SettingsError,
    resolve_settings,
    space_separated_paths,
)

pytest_plugins = ["pytest_ascend.fixtures"]

MARKERS = {
    "npu": "npu: needs the device under test and the model (--ascend-device, --ascend-model)",
    "slow": "slow(except_smoke=False): long work, skipped unless --ascend-run-slow; with "
    "except_smoke=True it also runs on the built-in tiny model, where it is quick",
    "sglang": "sglang: needs a live SGLang server (--sglang-url or --sglang-launch)",
}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ascend", "pytest-ascend: LLM inference on Ascend NPU / CUDA / CPU")
    for spec in OPTIONS:
        sources = f"[env {spec.env}, ini {spec.ini}]"
        kwargs: dict[str, Any] = {"dest": spec.dest, "default": None}
        if spec.is_flag:
            kwargs["action"] = "store_true"
        elif spec.is_list:
            kwargs.update(action="append", metavar=spec.metavar)
        else:
            kwargs["metavar"] = spec.metavar or "{" + ",".join(spec.allowed()) + "}"
        group.addoption(spec.flag, help=f"{spec.help_text()} {sources}", **kwargs)
        # default None, so an absent key is told apart from one set to false or empty
        parser.addini(
            spec.ini, f"{spec.help_text()} ({spec.flag})",
            type="bool" if spec.is_flag else "string", default=None,
        )


def pytest_configure(config: pytest.Config) -> None:
    declared = {line.split(":", 1)[0].split("(", 1)[0].strip() for line in config.getini("markers")}
    for name, line in MARKERS.items():
        if name not in declared:
            config.addinivalue_line("markers", line)
    try:
        config.stash[stash.settings_key] = resolve_settings(
            cli=lambda spec: config.getoption(spec.dest),
            ini=lambda spec: config.getini(spec.ini),
        )
    except SettingsError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.pluginmanager.register(JsonReportEnvironment(config), "ascend-json-report")
    config.stash[stash.guard_key] = ReportGuard(config)


def pytest_sessionstart(session: pytest.Session) -> None:
    """Plan at once when this command line configured pytest-ascend, so a bad option stops
    the session before collection. Otherwise wait: an installed plugin stays inert (no torch
    import, no device probing) in sessions that collect none of its tests, whatever
    PYTEST_ASCEND_* variables the environment holds."""
    settings = session.config.stash[stash.settings_key]
    if settings.given_on_command_line:
        _plan(session.config, announce=False)
    if settings.results_log is not None:
        _open_results_log(session.config, settings.results_log)


@pytest.hookimpl(trylast=True)  # after -m / -k deselection
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    from pytest_ascend.session import skip_reason

    suite = [item for item in items if _in_suite(item)]
    if not suite:
        return
    if hasattr(config, "workerinput"):
        _refuse_as_xdist_worker(config, items)
        return
    # Tests on a live SGLang server run last: a launched server holds device memory (and on
    # a CPU its scheduler busy-polls a core) until the session ends, and must not disturb
    # the timings and memory figures of everything else.
    items.sort(key=lambda item: "sglang_server" in getattr(item, "fixturenames", ()))
    plan = _plan(config, announce=True)
    for item in suite:
        slow = item.get_closest_marker("slow")
        reason = skip_reason(
            plan,
            npu=item.get_closest_marker("npu") is not None,
            slow=None if slow is None else dict(slow.kwargs),
            sglang=item.get_closest_marker("sglang") is not None,
        )
        if reason:
            item.add_marker(pytest.mark.skip(reason=reason))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test that asks for `ascend_card` runs once per selected card (--ascend-devices)."""
    if "ascend_card" in metafunc.fixturenames:
        plan = _plan(metafunc.config, announce=True)
        metafunc.parametrize("ascend_card", range(len(plan.cards)), indirect=True,
                             ids=[f"card{card.index}" for card in plan.cards])


def pytest_report_header(config: pytest.Config) -> list[str]:
    from pytest_ascend.reports.provenance import header_lines

    plan = config.stash.get(stash.plan_key, None)
    return [*_rootdir_warnings(config), *(header_lines(plan) if plan is not None else [])]


# Running a test: each phase of a suite test under the watchdog (watchdog.py) ----------------


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_setup(item: pytest.Item) -> Any:
    with _watched(item, "setup"):
        return (yield)


@pytest.hookimpl(wrapper=True, trylast=True)  # inside pytest-timeout's, which arms first
def pytest_runtest_call(item: pytest.Item) -> Any:
    with _watched(item, "call"):
        return (yield)


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_teardown(item: pytest.Item) -> Any:
    with _watched(item, "teardown"):
        return (yield)


# Reports ------------------------------------------------------------------------------------


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict) -> None:
    """pytest-benchmark asks at session end, when saving: the run's `ascend` block."""
    block = stash.ascend_block(config)
    if block is not None:
        machine_info["ascend"] = block


@pytest.hookimpl(optionalhook=True)
def pytest_json_runtest_metadata(item: pytest.Item, call: pytest.CallInfo) -> Optional[dict]:
    """A benchmarked test's metrics as its JSON-report metadata."""
    return _test_metrics(item) if call.when == "call" else None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    """Each finished test (and any setup/teardown that did not pass) into the results log."""
    report = yield
    server = item.config.stash.get(stash.server_key, None)
    if report.failed and server is not None and "sglang_server" in item.fixturenames:
        tail = server.log_tail()
        if tail:
            report.sections.append(("SGLang server log (tail)", tail))
    if report.when == "call" or not report.passed:
        _log(item.config, "test", nodeid=report.nodeid, when=report.when,
             outcome=report.outcome, duration_s=report.duration,
             message=_outcome_message(report),
             metrics=_test_metrics(item) if report.when == "call" else None)
    return report


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> Any:
    """Around every other plugin's session end (report_guard.py says why): the reports are
    protected from each other, and the results log's last line carries the final status."""
    config = session.config
    if stash.xdist_refusal_key in config.stash:
        session.exitstatus = pytest.ExitCode.USAGE_ERROR
    guard = config.stash[stash.guard_key]
    guard.before_session_end()
    try:
        return (yield)
    finally:
        session.exitstatus = guard.exit_status(session.exitstatus)
        log = config.stash.get(stash.results_log_key, None)
        if log is not None:
            _log(config, "session_end", exitstatus=int(session.exitstatus),
                 status=_end_status(config), ascend=stash.ascend_block(config))
            log.close()


def pytest_unconfigure(config: pytest.Config) -> None:
    """The session's watchdog thread ends with it (a process running several sessions, as
    pytester does, would otherwise keep one idle thread per session), and SIGTERM gets back
    the handler it had."""
    watchdog = config.stash.get(stash.watchdog_key, None)
    if watchdog is not None:
        watchdog.close()
    restore = config.stash.get(stash.sigterm_restore_key, None)
    if restore is not None:
        restore()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """On pytest-xdist's controller: a worker that refused the suite says why."""
    refusal = getattr(node, "workeroutput", {}).get("ascend_refused")
    if refusal:
        node.config.stash[stash.xdist_refusal_key] = refusal


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """Reports that were not (fully) written, one line each."""
    guard = config.stash[stash.guard_key]
    guard.check_json_report()
    log = config.stash.get(stash.results_log_key, None)
    if log is not None and log.failure is not None:
        guard.failures.append(f"the results log {log.path} is incomplete: {log.lost} "
                              f"record(s) not written ({log.failure})")
    refusal = config.stash.get(stash.xdist_refusal_key, None)
    if refusal is not None:
        terminalreporter.write_line(f"pytest-ascend: {refusal}", red=True, bold=True)
    for failure in guard.failures:
        terminalreporter.write_line(f"pytest-ascend: {failure}", red=True, bold=True)
    box = config.stash.get(stash.box_key, None)
    if box is not None:
        for title, lines in box.tables():
            terminalreporter.write_sep("-", f"pytest-ascend: {title}")
            for line in lines:
                terminalreporter.write_line(line)


class JsonReportEnvironment:
    """pytest-json-report 1.5 with pytest-metadata 3 writes `"environment": {}`; fill it with
    pytest-metadata's facts and the `ascend` block (a class, since the hook gets no config)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    @pytest.hookimpl(optionalhook=True)
    def pytest_json_modifyreport(self, json_report: dict) -> None:
        environment = dict(json_report.get("environment") or {})
        try:
            from pytest_metadata.plugin import metadata_key

            environment.update(self.config.stash.get(metadata_key, {}))
        except ImportError:
            pass
        block = stash.ascend_block(self.config)
        if block is not None:
            environment["ascend"] = block
        json_report["environment"] = environment


# Helpers ------------------------------------------------------------------------------------


def _open_results_log(config: pytest.Config, path: Any) -> None:
    from pytest_ascend.reports.results_log import ResultsLog

    try:
        log = ResultsLog(path)
    except OSError as exc:
        raise pytest.UsageError(
            f"--ascend-results-log {path}: cannot append to it ({exc.strerror}); give a "
            f"writable path"
        ) from None
    config.stash[stash.results_log_key] = log
    _stop_on_sigterm_as_on_ctrl_c(config)
    _log(config, "session_start", args=list(config.invocation_params.args),
         ascend=stash.ascend_block(config))


def _log(config: pytest.Config, kind: str, **fields: Any) -> None:
    """A record into the results log, if there is one. The first write that fails (a full
    disk) says so once, at once; the tests go on and the summary counts what was lost."""
    log = config.stash.get(stash.results_log_key, None)
    if log is None:
        return
    failed_before = log.failure is not None
    log.write(kind, **fields)
    if log.failure is not None and not failed_before:
        stash.write_line(config, f"pytest-ascend: WARNING: --ascend-results-log {log.path}: "
                                 f"{log.failure}; no more records go there, the tests go on")


def _test_metrics(item: pytest.Item) -> Optional[dict]:
    """What a test measured: its `record_property` values, its `benchmark.extra_info`, and
    its memory_sampler's series."""
    metrics: dict[str, Any] = dict(getattr(item, "user_properties", ()))
    fixture = getattr(item, "funcargs", {}).get("benchmark")
    if fixture is not None:
        metrics.update(fixture.extra_info)
    sampler = item.stash.get(stash.sampler_key, None)
    if sampler is not None:
        metrics["memory_samples"] = sampler.series()
    return metrics or None


def _outcome_message(report: pytest.TestReport) -> Optional[str]:
    """The skip reason, or the exception line of a failure."""
    if report.passed:
        return None
    if report.skipped and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2])
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        return str(crash.message)
    lines = report.longreprtext.strip().splitlines()
    return lines[-1] if lines else None


@contextmanager
def _watched(item: pytest.Item, phase: str) -> Iterator[None]:
    """A suite test's phase, named for the watchdog. pytest-timeout arms the watchdog through
    its own hook (below) for what it times; a call it does not time is armed here with
    --ascend-watchdog, so a hang in native code is never left unwatched."""
    if not _in_suite(item):
        yield
        return
    watchdog = _watchdog(item.config, item.session)
    own = phase == "call" and watchdog.armed_for() != item.nodeid
    if own:
        watchdog.arm(item.nodeid, phase, item.config.stash[stash.settings_key].watchdog)
    else:
        watchdog.relabel(phase)
    try:
        yield
    finally:
        if own:
            watchdog.disarm()


@pytest.hookimpl(optionalhook=True)
def pytest_timeout_set_timer(item: pytest.Item, settings: Any) -> None:
    """pytest-timeout is timing `item`: the watchdog watches the same span with the same
    budget. Returns None, so pytest-timeout still sets its own timer."""
    if _in_suite(item):
        _watchdog(item.config, item.session).arm(
            item.nodeid, "call" if settings.func_only else "setup", float(settings.timeout))


@pytest.hookimpl(optionalhook=True)
def pytest_timeout_cancel_timer(item: pytest.Item) -> None:
    watchdog = item.config.stash.get(stash.watchdog_key, None)
    if watchdog is not None and watchdog.armed_for() == item.nodeid:
        watchdog.disarm()


def _watchdog(config: pytest.Config, session: pytest.Session) -> Any:
    from pytest_ascend.watchdog import Watchdog

    if stash.watchdog_key not in config.stash:
        config.stash[stash.watchdog_key] = Watchdog(lambda hang: _abort(session, hang))
    return config.stash[stash.watchdog_key]


def _abort(session: pytest.Session, hang: Any) -> None:
    """On the watchdog's thread, the main one blocked in native code: record the hung test,
    write every report for what finished (the session-end hooks, as pytest would run them),
    and end the process with EXIT_HUNG."""
    from pytest_ascend.watchdog import EXIT_HUNG

    config = session.config
    config.stash[stash.hang_key] = hang
    capture = config.pluginmanager.get_plugin("capturemanager")
    try:
        if capture is not None:
            capture.suspend_global_capture(in_=True)
        sys.stderr.write(f"\npytest-ascend: {hang.describe()}; writing the reports of the tests "
                         f"that finished, then exiting with {EXIT_HUNG}\n")
        _log(config, "test", nodeid=hang.nodeid, when=hang.phase, outcome="timeout",
             duration_s=hang.seconds, message=hang.describe(), stacks=hang.stacks)
        session.exitstatus = EXIT_HUNG
        config.hook.pytest_sessionfinish(session=session, exitstatus=EXIT_HUNG)
    except BaseException as exc:  # the exit below must happen whatever a report did
        sys.stderr.write(f"pytest-ascend: while writing the reports: {exc!r}\n")
    finally:
        sys.stderr.flush()
        sys.stdout.flush()
        os._exit(EXIT_HUNG)


def _rootdir_warnings(config: pytest.Config) -> list[str]:
    """A path-valued option given with a space can make pytest take its rootdir from the
    value and lose the project's configuration (timeout, strict markers, testpaths). Said
    when the rootdir found has no ini file, or one that does not hold the invocation dir."""
    invoked = config.invocation_params
    ini = config.inipath
    if ini is not None and invoked.dir.resolve().is_relative_to(ini.parent.resolve()):
        return []
    found = f"ini file {ini}" if ini is not None else "no ini file"
    return [f"pytest-ascend: WARNING: pytest chose rootdir {config.rootpath} ({found}) from "
            f"`{flag} {value}`: this project's pytest settings are not in force; write "
            f"{flag}={value}" for flag, value in space_separated_paths(invoked.args)]


XDIST_REFUSAL = ("the suite's tests cannot run under pytest-xdist (-n): pytest-benchmark "
                 "turns itself off there and every measured figure would be lost; run them "
                 "without -n")


def _refuse_as_xdist_worker(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On an xdist worker, a session that holds suite tests runs none of its tests: the
    controller gets the reason (pytest_testnodedown) and ends with a usage error, one line,
    instead of a green run without the benchmarks it was asked for."""
    config.workeroutput["ascend_refused"] = XDIST_REFUSAL  # type: ignore[attr-defined]
    config.hook.pytest_deselected(items=list(items))
    items[:] = []


def _stop_on_sigterm_as_on_ctrl_c(config: pytest.Config) -> None:
    """SIGTERM is what cron timeouts, systemd, Jenkins and Slurm send; by default it ends the
    process at once and every report of the night is lost. Raised as KeyboardInterrupt it
    stops the run as Ctrl-C does: fixtures (a launched server) torn down, every report
    written. A second SIGTERM finds the old handler back and ends the process as before.
    Only the main thread can install it, and a handler someone else set is left alone."""
    if (stash.sigterm_restore_key in config.stash
            or threading.current_thread() is not threading.main_thread()):
        return
    previous = signal.getsignal(signal.SIGTERM)
    if previous is not signal.SIG_DFL:
        return

    def on_sigterm(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGTERM, previous)
        config.stash[stash.terminated_key] = True
        raise KeyboardInterrupt("SIGTERM")

    signal.signal(signal.SIGTERM, on_sigterm)
    config.stash[stash.sigterm_restore_key] = lambda: signal.signal(signal.SIGTERM, previous)


def _end_status(config: pytest.Config) -> Optional[str]:
    """Why the session ended early, for the results log's last line."""
    hang = config.stash.get(stash.hang_key, None)
    if hang is not None:
        return f"aborted by a hang: {hang.describe()}"
    if config.stash.get(stash.terminated_key, False):
        return "terminated by SIGTERM"
    if stash.xdist_refusal_key in config.stash:
        return config.stash[stash.xdist_refusal_key]
    return None


def _in_suite(item: pytest.Item) -> bool:
    """Whether `item` belongs to the hardware suite: marked npu or sglang, or using one of the
    plugin's fixtures (each is named ascend_* or built on ascend_plan, so a project's own
    `model` fixture does not count). `slow` alone does not: other projects have their own
    `slow` tests, and the plugin leaves them (and their sessions: no torch import) alone."""
    return any(name.startswith("ascend_") for name in getattr(item, "fixturenames", ())) or any(
        item.get_closest_marker(name) is not None for name in ("npu", "sglang")
    )


def _plan(config: pytest.Config, announce: bool) -> Any:
    """The session plan, made on first need; a setup problem is a one-line usage error.

    A plan made at session start reaches the report header; one made later (`announce`)
    writes the same lines itself, since the header is printed by then.
    """
    from pytest_ascend.session import SessionSetupError, plan_session

    _stop_on_sigterm_as_on_ctrl_c(config)
    if stash.plan_key not in config.stash:
        try:
            config.stash[stash.plan_key] = plan_session(config.stash[stash.settings_key])
        except SessionSetupError as exc:
            raise pytest.UsageError(str(exc)) from None
        if announce:
            from pytest_ascend.reports.provenance import header_lines

            for line in header_lines(config.stash[stash.plan_key]):
                stash.write_line(config, line)
    return config.stash[stash.plan_key]
