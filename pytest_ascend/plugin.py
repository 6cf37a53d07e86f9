"""pytest-ascend's pytest hooks: options, markers and their gating, the header, the
watchdog, reports.

Read top-down: options -> configure (settings) -> session start (device, dtype, model
checks) -> collection (gating) -> header -> running a test (the watchdog) -> reports. Every
hook delegates to the session's one owner, ascend_session.AscendSession; the fixtures
(fixtures.py) do too. Everything that decides or measures lives in modules that know nothing
of pytest. No torch import at module level,
so `pytest --help` stays fast.
"""

from __future__ import annotations

import os
from contextlib import contextmanager, nullcontext
from typing import Any, Iterator, Optional

import pytest

from pytest_ascend.ascend_session import PLUGIN_NAME, AscendSession, of
from pytest_ascend.settings import (
    GROUPS,
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
    """Each sub-package's options under a heading of their own in --help."""
    for group in GROUPS:
        section = parser.getgroup(f"ascend: {group.title}", f"pytest-ascend: {group.title}")
        for spec in group.options:
            _add_option(parser, section, spec)


def pytest_configure(config: pytest.Config) -> None:
    declared = {line.split(":", 1)[0].split("(", 1)[0].strip() for line in config.getini("markers")}
    for name, line in MARKERS.items():
        if name not in declared:
            config.addinivalue_line("markers", line)
    try:
        settings = resolve_settings(
            cli=lambda spec: config.getoption(spec.dest),
            ini=lambda spec: config.getini(spec.ini),
        )
    except SettingsError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.pluginmanager.register(AscendSession(config, settings), PLUGIN_NAME)


def pytest_sessionstart(session: pytest.Session) -> None:
    """Plan at once when this command line configured pytest-ascend, so a bad option stops
    the session before collection. Otherwise wait: an installed plugin stays inert (no torch
    import, no device probing) in sessions that collect none of its tests, whatever
    PYTEST_ASCEND_* variables the environment holds."""
    ascend = of(session.config)
    if ascend.settings.given_on_command_line:
        ascend.plan(announce=False)
    if ascend.settings.results_log is not None:
        ascend.open_results_log(ascend.settings.results_log)


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
    # The soak runs first: its processes load the model onto every card, which must be free
    # of the session's own copy (loaded on first use, by the tests after it).
    items.sort(key=lambda item: ("ascend_soak" not in getattr(item, "fixturenames", ()),
                                 "sglang_server" in getattr(item, "fixturenames", ())))
    ascend = of(config)
    plan = ascend.plan(announce=True)
    runnable = 0
    for item in suite:
        _allow_for_compiling(item, plan.compile_allowance_s)
        slow = item.get_closest_marker("slow")
        reason = skip_reason(
            plan,
            npu=item.get_closest_marker("npu") is not None,
            slow=None if slow is None else dict(slow.kwargs),
            sglang=item.get_closest_marker("sglang") is not None,
        )
        if reason:
            item.add_marker(pytest.mark.skip(reason=reason))
        else:
            runnable += 1
    ascend.suite_collected(runnable)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test that asks for `ascend_card` runs once per selected card (--ascend-devices)."""
    if "ascend_card" in metafunc.fixturenames:
        plan = of(metafunc.config).plan(announce=True)
        metafunc.parametrize("ascend_card", range(len(plan.cards)), indirect=True,
                             ids=[f"card{card.index}" for card in plan.cards])


def pytest_report_header(config: pytest.Config) -> list[str]:
    return [*_rootdir_warnings(config), *of(config).header_lines()]


# Running a test: each phase of a suite test under the watchdog (watchdog.py) ----------------


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_setup(item: pytest.Item) -> Any:
    with _watched(item, "setup"):
        return (yield)


@pytest.hookimpl(wrapper=True, trylast=True)  # inside pytest-timeout's, which arms first
def pytest_runtest_call(item: pytest.Item) -> Any:
    suite = _in_suite(item)
    region = of(item.config).watched_region(item) if suite else nullcontext()
    with _watched(item, "call"), region:
        outcome = yield
        if suite:
            of(item.config).profile_timed_region(item)
        return outcome


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(fixturedef: Any, request: pytest.FixtureRequest) -> Any:
    """pytest-benchmark's fixture, as a suite test gets it: --ascend-profile's tests' record
    what they time."""
    value = yield
    if fixturedef.argname == "benchmark" and _in_suite(request.node):
        of(request.config).watch_timed_region(request.node, value)
    return value


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_teardown(item: pytest.Item) -> Any:
    with _watched(item, "teardown"):
        return (yield)


@pytest.hookimpl(optionalhook=True)
def pytest_timeout_set_timer(item: pytest.Item, settings: Any) -> None:
    """pytest-timeout is timing `item`: the watchdog watches the same span with the same
    budget. Returns None, so pytest-timeout still sets its own timer."""
    if _in_suite(item):
        ascend = of(item.config)
        ascend.timed_by_pytest_timeout(item.nodeid, float(settings.timeout))
        ascend.watchdog(item.session).arm(
            item.nodeid, "call" if settings.func_only else "setup", float(settings.timeout))


@pytest.hookimpl(optionalhook=True)
def pytest_timeout_cancel_timer(item: pytest.Item) -> None:
    watchdog = of(item.config).armed_watchdog()
    if watchdog is not None and watchdog.armed_for() == item.nodeid:
        watchdog.disarm()


# Reports ------------------------------------------------------------------------------------


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict) -> None:
    """pytest-benchmark asks at session end, when saving: the run's `ascend` block."""
    block = of(config).ascend_block()
    if block is not None:
        machine_info["ascend"] = block


@pytest.hookimpl(optionalhook=True)
def pytest_json_runtest_metadata(item: pytest.Item, call: pytest.CallInfo) -> Optional[dict]:
    """A benchmarked test's metrics as its JSON-report metadata."""
    return of(item.config).test_metrics(item) if call.when == "call" else None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    """Each finished test (and any setup/teardown that did not pass) into the results log."""
    report = yield
    ascend = of(item.config)
    if report.failed and "sglang_server" in item.fixturenames:
        tail = ascend.server_log_tail()
        if tail:
            report.sections.append(("SGLang server log (tail)", tail))
    if report.when == "teardown" and _in_suite(item):
        ascend.suite_test_finished(item.nodeid)
    if report.when == "call" or not report.passed:
        ascend.log("test", nodeid=report.nodeid, when=report.when, outcome=report.outcome,
                   duration_s=report.duration, message=_outcome_message(report),
                   metrics=ascend.test_metrics(item) if report.when == "call" else None)
    return report


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> Any:
    """Around every other plugin's session end (report_guard.py says why): the reports are
    protected from each other, and the results log's last line carries the final status."""
    ascend = of(session.config)
    if ascend.xdist_refusal is not None:
        session.exitstatus = pytest.ExitCode.USAGE_ERROR
    session.exitstatus = ascend.judge_health(session.exitstatus)
    ascend.guard.before_session_end()
    try:
        return (yield)
    finally:
        session.exitstatus = ascend.guard.exit_status(session.exitstatus)
        ascend.finish(session.exitstatus)


def pytest_unconfigure(config: pytest.Config) -> None:
    ascend = of(config)
    if ascend is not None:  # None when a bad option stopped pytest_configure
        ascend.close()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """On pytest-xdist's controller: a worker that refused the suite says why."""
    refusal = getattr(node, "workeroutput", {}).get("ascend_refused")
    if refusal:
        of(node.config).xdist_refusal = refusal


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """Reports that were not (fully) written, one line each, and the box's tables."""
    ascend = of(config)
    for line in ascend.summary_lines():
        terminalreporter.write_line(line, red=True, bold=True)
    if ascend.box is not None:
        for title, lines in ascend.box.tables():
            terminalreporter.write_sep("-", f"pytest-ascend: {title}")
            for line in lines:
                terminalreporter.write_line(line)


# Helpers ------------------------------------------------------------------------------------


def _add_option(parser: pytest.Parser, section: Any, spec: Any) -> None:
    sources = f"[env {spec.env}, ini {spec.ini}]"
    kwargs: dict[str, Any] = {"dest": spec.dest, "default": None}
    if spec.is_flag:
        kwargs["action"] = "store_true"
    elif spec.is_list:
        kwargs.update(action="append", metavar=spec.metavar)
    else:
        kwargs["metavar"] = spec.metavar or "{" + ",".join(spec.allowed()) + "}"
    section.addoption(spec.flag, help=f"{spec.help_text()} {sources}", **kwargs)
    # default None, so an absent key is told apart from one set to false or empty
    parser.addini(spec.ini, f"{spec.help_text()} ({spec.flag})",
                  type="bool" if spec.is_flag else "string", default=None)


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
    its own hook (above) for what it times; a call it does not time is armed here with
    --ascend-watchdog, so a hang in native code is never left unwatched."""
    if not _in_suite(item):
        yield
        return
    ascend = of(item.config)
    watchdog = ascend.watchdog(item.session)
    own = phase == "call" and watchdog.armed_for() != item.nodeid
    if own:
        watchdog.arm(item.nodeid, phase, ascend.call_budget_s(item))
    else:
        watchdog.relabel(phase)
    try:
        yield
    finally:
        if own:
            watchdog.disarm()


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


def _allow_for_compiling(item: pytest.Item, allowance_s: float) -> None:
    """On a chip that compiles operators on first use, a test's pytest-timeout budget (its
    marker, else --timeout / PYTEST_TIMEOUT / the ini's `timeout`) grows by the allowance, as
    a marker of the test's own: pytest-timeout and the watchdog armed from it see one budget."""
    if allowance_s <= 0:
        return
    marker = item.get_closest_marker("timeout")
    if marker is not None and (marker.args or "timeout" in marker.kwargs):
        base = marker.args[0] if marker.args else marker.kwargs["timeout"]
        kwargs = {key: value for key, value in marker.kwargs.items() if key != "timeout"}
    else:
        config = item.config
        base = (config.getoption("timeout", None) or os.environ.get("PYTEST_TIMEOUT")
                or config.getini("timeout"))
        kwargs = {}
    if not base or float(base) <= 0:
        return  # pytest-timeout times nothing; the watchdog's own budget has the allowance
    item.add_marker(pytest.mark.timeout(float(base) + allowance_s, **kwargs), append=False)


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


def _in_suite(item: pytest.Item) -> bool:
    """Whether `item` belongs to the hardware suite: marked npu or sglang, or using one of the
    plugin's fixtures (each is named ascend_* or built on ascend_plan, so a project's own
    `model` fixture does not count). `slow` alone does not: other projects have their own
    `slow` tests, and the plugin leaves them (and their sessions: no torch import) alone."""
    return any(name.startswith("ascend_") for name in getattr(item, "fixturenames", ())) or any(
        item.get_closest_marker(name) is not None for name in ("npu", "sglang")
    )
