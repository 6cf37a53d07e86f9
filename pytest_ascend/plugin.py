"""pytest-ascend's pytest wiring: options, markers and their gating, the header, fixtures.

Read top-down: options -> configure (settings) -> session start (device, dtype, model
checks) -> collection (gating) -> header -> reports -> fixtures. Everything that decides or measures
lives in modules that know nothing of pytest; this one only connects them. No torch import
at module level, so `pytest --help` stays fast.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any, Callable, Optional

import pytest

from pytest_ascend.settings import OPTIONS, AscendSettings, SettingsError, resolve_settings

MARKERS = {
    "npu": "npu: needs the device under test and the model (--ascend-device, --ascend-model)",
    "slow": "slow(except_smoke=False): long work, skipped unless --ascend-run-slow; with "
    "except_smoke=True it also runs on the built-in tiny model, where it is quick",
    "sglang": "sglang: needs a live SGLang server (--sglang-url or --sglang-launch)",
}

settings_key = pytest.StashKey[AscendSettings]()
plan_key = pytest.StashKey[Any]()  # session.SessionPlan, imported lazily with torch
model_key = pytest.StashKey[Any]()  # models.ModelUnderTest, once a test loaded it
limits_key = pytest.StashKey[Any]()  # roofline.DeviceLimits, once a test measured them
environment_key = pytest.StashKey[dict]()
results_log_key = pytest.StashKey[Any]()  # results_log.ResultsLog, with --ascend-results-log
sampler_key = pytest.StashKey[Any]()  # on an item: the memory.MemorySampler of its test
server_key = pytest.StashKey[Any]()  # sglang_server.ServerProcess, when we launched one
server_facts_key = pytest.StashKey[dict]()  # what the SGLang server said about itself


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
            kwargs["metavar"] = spec.metavar or "{" + ",".join(spec.choices) + "}"
        group.addoption(spec.flag, help=f"{spec.help} {sources}", **kwargs)
        # default None, so an absent key is told apart from one set to false or empty
        parser.addini(
            spec.ini, f"{spec.help} ({spec.flag})", type="bool" if spec.is_flag else "string",
            default=None,
        )


def pytest_configure(config: pytest.Config) -> None:
    declared = {line.split(":", 1)[0].split("(", 1)[0].strip() for line in config.getini("markers")}
    for name, line in MARKERS.items():
        if name not in declared:
            config.addinivalue_line("markers", line)
    try:
        config.stash[settings_key] = resolve_settings(
            cli=lambda spec: config.getoption(spec.dest),
            ini=lambda spec: config.getini(spec.ini),
        )
    except SettingsError as exc:
        raise pytest.UsageError(str(exc)) from None


    config.pluginmanager.register(JsonReportEnvironment(config), "ascend-json-report")


def pytest_sessionstart(session: pytest.Session) -> None:
    """Plan at once when the user configured pytest-ascend, so a bad option stops the session
    before collection. Otherwise wait: an installed plugin stays inert (no torch import, no
    device probing) in sessions that collect none of its tests."""
    settings = session.config.stash[settings_key]
    if settings.sources:
        _plan(session.config, announce=False)
    if settings.results_log is not None:
        _open_results_log(session.config, settings.results_log)


@pytest.hookimpl(trylast=True)  # after -m / -k deselection
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    from pytest_ascend.session import skip_reason

    suite = [item for item in items if _in_suite(item)]
    if not suite:
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


def pytest_report_header(config: pytest.Config) -> list[str]:
    from pytest_ascend.reports.provenance import header_lines

    plan = config.stash.get(plan_key, None)
    return header_lines(plan) if plan is not None else []


# Reports ------------------------------------------------------------------------------------


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict) -> None:
    """pytest-benchmark asks at session end, when saving: the run's `ascend` block."""
    block = _ascend_block(config)
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
    server = item.config.stash.get(server_key, None)
    if report.failed and server is not None and "sglang_server" in item.fixturenames:
        report.sections.append(("SGLang server log (tail)", server.log_tail()))
    log = item.config.stash.get(results_log_key, None)
    if log is not None and (report.when == "call" or not report.passed):
        log.write(
            "test", nodeid=report.nodeid, when=report.when, outcome=report.outcome,
            duration_s=report.duration, message=_outcome_message(report),
            metrics=_test_metrics(item) if report.when == "call" else None,
        )
    return report


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    log = session.config.stash.get(results_log_key, None)
    if log is not None:
        log.write("session_end", exitstatus=int(exitstatus), ascend=_ascend_block(session.config))
        log.close()


def _open_results_log(config: pytest.Config, path: Any) -> None:
    from pytest_ascend.reports.results_log import ResultsLog

    try:
        log = ResultsLog(path)
    except OSError as exc:
        raise pytest.UsageError(
            f"--ascend-results-log {path}: cannot append to it ({exc.strerror}); give a "
            f"writable path"
        ) from None
    config.stash[results_log_key] = log
    log.write("session_start", args=list(config.invocation_params.args),
              ascend=_ascend_block(config))


def _test_metrics(item: pytest.Item) -> Optional[dict]:
    """What a test measured: its `benchmark.extra_info`, and its memory_sampler's series."""
    metrics: dict[str, Any] = {}
    fixture = getattr(item, "funcargs", {}).get("benchmark")
    if fixture is not None:
        metrics.update(fixture.extra_info)
    sampler = item.stash.get(sampler_key, None)
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
        block = _ascend_block(self.config)
        if block is not None:
            environment["ascend"] = block
        json_report["environment"] = environment


def _ascend_block(config: pytest.Config) -> Optional[dict]:
    from pytest_ascend.reports.provenance import ascend_block

    plan = config.stash.get(plan_key, None)
    if plan is None:
        return None
    return ascend_block(
        plan, _environment(config, plan.device), config.stash.get(model_key, None),
        config.stash.get(limits_key, None), config.stash.get(server_facts_key, None),
    )


def _environment(config: pytest.Config, device: Any) -> dict:
    if environment_key not in config.stash:
        from pytest_ascend.reports.environment import gather_environment

        config.stash[environment_key] = gather_environment(device)
    return config.stash[environment_key]


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

    if plan_key not in config.stash:
        try:
            config.stash[plan_key] = plan_session(config.stash[settings_key])
        except SessionSetupError as exc:
            raise pytest.UsageError(str(exc)) from None
        if announce:
            from pytest_ascend.reports.provenance import header_lines

            for line in header_lines(config.stash[plan_key]):
                _write_line(config, line)
    return config.stash[plan_key]


def _write_line(config: pytest.Config, line: str) -> None:
    """Straight to the terminal on a line of its own, past output capture (fixtures and tests
    run captured)."""
    if config.pluginmanager.get_plugin("terminalreporter") is None:
        return
    writer = config.get_terminal_writer()
    capture = config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else nullcontext():
        if writer.width_of_current_line:  # mid-way through a row of progress dots
            writer.line()
        writer.line(line)


# Fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def ascend_settings(pytestconfig: pytest.Config) -> AscendSettings:
    """The resolved pytest-ascend settings (options, env vars, ini keys)."""
    return pytestconfig.stash[settings_key]


@pytest.fixture(scope="session")
def ascend_plan(pytestconfig: pytest.Config) -> Any:
    """The session plan: settings plus the resolved device and dtype."""
    return pytestconfig.stash[plan_key]


@pytest.fixture(scope="session")
def npu_device(ascend_plan: Any) -> Any:
    """The DeviceUnderTest (npu, cuda or cpu) this session measures."""
    return ascend_plan.device


@pytest.fixture(scope="session")
def model_under_test(ascend_plan: Any, pytestconfig: pytest.Config) -> Any:
    """The session's model, loaded once, with its load-time facts (ModelUnderTest)."""
    loaded = _load(pytestconfig, ascend_plan, ascend_plan.settings.model)
    pytestconfig.stash[model_key] = loaded
    return loaded


@pytest.fixture(scope="session")
def model(model_under_test: Any) -> Any:
    """The model under test: eval mode, on the device, in the session dtype."""
    return model_under_test.model


@pytest.fixture(scope="session")
def tokenizer(model_under_test: Any) -> Any:
    """The model's tokenizer (left padding, pad token set)."""
    return model_under_test.tokenizer


@pytest.fixture(scope="session")
def draft_model(ascend_plan: Any, model_under_test: Any, pytestconfig: pytest.Config) -> Any:
    """The draft model (ModelUnderTest) for speculative decoding; shares the tokenizer."""
    spec = ascend_plan.settings.draft_model
    if spec is None:
        pytest.skip("no draft model: pass --ascend-draft-model PATH (or tiny-draft)")
    return _load(pytestconfig, ascend_plan, spec)


@pytest.fixture(scope="session")
def ascend_env(npu_device: Any, pytestconfig: pytest.Config) -> dict:
    """Versions and hardware facts of this run; every key present, None when unknown."""
    return _environment(pytestconfig, npu_device)


@pytest.fixture(scope="session")
def device_limits(ascend_plan: Any, pytestconfig: pytest.Config) -> Any:
    """The device's copy bandwidth and matmul rate in the session dtype (roofline.DeviceLimits),
    measured once per session (the roofline the perf suite's fractions refer to)."""
    from pytest_ascend.reports.progress import limits_line
    from pytest_ascend.measure.roofline import measure_device_limits

    _write_line(pytestconfig, "pytest-ascend: measuring device copy bandwidth and matmul rate")
    limits = measure_device_limits(ascend_plan.device, ascend_plan.dtype)
    pytestconfig.stash[limits_key] = limits
    _write_line(pytestconfig, f"pytest-ascend: {limits_line(limits)}")
    return limits


@pytest.fixture
def memory_sampler(request: pytest.FixtureRequest, npu_device: Any,
                   ascend_settings: AscendSettings) -> Any:
    """A background memory.MemorySampler on the device under test for the whole test, every
    --ascend-memory-interval seconds; its series goes into the test's JSON-report metadata
    and results-log line (`memory_samples`)."""
    from pytest_ascend.measure.memory import MemorySampler

    sampler = MemorySampler(npu_device, ascend_settings.memory_interval).start()
    request.node.stash[sampler_key] = sampler
    yield sampler
    sampler.stop()


@pytest.fixture(scope="session")
def sglang_server(ascend_plan: Any, pytestconfig: pytest.Config,
                  tmp_path_factory: pytest.TempPathFactory) -> Any:
    """An SGLangClient for the session's server: --sglang-url connects to a running one;
    --sglang-launch starts one for the session's model on the device under test and stops
    its whole process tree at session end (Ctrl-C and failures included)."""
    import shlex
    import sys

    from pytest_ascend.model.loading import ModelSpecError, resolve_model_dir
    from pytest_ascend.serving.sglang_server import (
        ServerError,
        ServerProcess,
        SGLangClient,
        free_port,
        launch_argv,
        launch_env,
    )

    settings, device = ascend_plan.settings, ascend_plan.device

    def progress(message: str) -> None:
        _write_line(pytestconfig, f"pytest-ascend: {message}")

    if settings.sglang_url:
        client = SGLangClient(settings.sglang_url)
        if not client.healthy():
            pytest.fail(f"--sglang-url {settings.sglang_url}: no healthy SGLang server there "
                        f"(GET /health_generate did not answer 200)", pytrace=False)
        pytestconfig.stash[server_facts_key] = client.facts(launched=False)
        yield client
        return
    try:
        model_dir = resolve_model_dir(settings.model, settings.cache, progress=progress)
    except ModelSpecError as exc:
        pytest.fail(str(exc), pytrace=False)
    port = free_port()
    argv = launch_argv(settings.sglang_python or sys.executable, model_dir,
                       device_kind=device.kind, dtype=ascend_plan.dtype, port=port,
                       extra_args=settings.sglang_args)
    log = tmp_path_factory.mktemp("sglang") / "server.log"
    server = ServerProcess(argv, f"http://127.0.0.1:{port}", log, env=launch_env(device.kind),
                           timeout_s=settings.sglang_timeout, progress=progress)
    progress(f"launching SGLang (log {log}): {shlex.join(argv)}")
    try:
        server.__enter__()
    except ServerError as exc:
        pytest.fail(f"--sglang-launch: {exc}", pytrace=False)
    pytestconfig.stash[server_key] = server
    try:
        client = SGLangClient(server.base_url)
        pytestconfig.stash[server_facts_key] = client.facts(launched=True, log=log)
        yield client
    finally:
        server.stop()
        progress("SGLang server stopped")


@pytest.fixture(scope="session")
def ascend_progress(pytestconfig: pytest.Config) -> Callable[[str], None]:
    """`ascend_progress(message)` writes one line to the terminal now, even under capture:
    long measurements report each configuration as it finishes."""
    return lambda message: _write_line(pytestconfig, f"pytest-ascend: {message}")


def _load(config: pytest.Config, plan: Any, spec: str) -> Any:
    from pytest_ascend.model.loading import ModelLoadError, ModelSpecError, load_under_test

    def progress(message: str) -> None:
        _write_line(config, f"pytest-ascend: {message}")

    try:
        return load_under_test(
            spec,
            plan.device,
            plan.dtype,
            cache_dir=plan.settings.cache,
            trust_remote_code=plan.settings.trust_remote_code,
            base_spec=plan.settings.model,
            progress=progress,
        )
    except (ModelSpecError, ModelLoadError) as exc:
        pytest.fail(str(exc), pytrace=False)
