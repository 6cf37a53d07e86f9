"""pytest-ascend's pytest wiring: options, markers and their gating, the header, fixtures.

Read top-down: options -> configure (settings) -> session start (device, dtype, model
checks) -> collection (gating) -> header -> fixtures. Everything that decides or measures
lives in modules that know nothing of pytest; this one only connects them. No torch import
at module level, so `pytest --help` stays fast.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

import pytest

from pytest_ascend.settings import OPTIONS, AscendSettings, SettingsError, resolve_settings

MARKERS = {
    "npu": "npu: needs the device under test and the model (--ascend-device, --ascend-model)",
    "slow": "slow(except_smoke=False): long work, skipped unless --run-slow; with "
    "except_smoke=True it also runs on the built-in tiny model, where it is quick",
    "sglang": "sglang: needs a live SGLang server (--sglang-url or --sglang-launch)",
}

settings_key = pytest.StashKey[AscendSettings]()
plan_key = pytest.StashKey[Any]()  # session.SessionPlan, imported lazily with torch


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ascend", "pytest-ascend: LLM inference on Ascend NPU / CUDA / CPU")
    for spec in OPTIONS:
        sources = f"[env {spec.env}, ini {spec.ini}]"
        kwargs: dict[str, Any] = {"dest": spec.dest, "default": None}
        if spec.is_flag:
            kwargs["action"] = "store_true"
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


def pytest_sessionstart(session: pytest.Session) -> None:
    """Plan at once when the user configured pytest-ascend, so a bad option stops the session
    before collection. Otherwise wait: an installed plugin stays inert (no torch import, no
    device probing) in sessions that collect none of its tests."""
    if session.config.stash[settings_key].sources:
        _plan(session.config, announce=False)


@pytest.hookimpl(trylast=True)  # after -m / -k deselection
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    from pytest_ascend.session import skip_reason

    if not any(_needs_plan(item) for item in items):
        return
    plan = _plan(config, announce=True)
    for item in items:
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
    from pytest_ascend.reporting import header_lines

    plan = config.stash.get(plan_key, None)
    return header_lines(plan) if plan is not None else []


def _needs_plan(item: pytest.Item) -> bool:
    return "ascend_plan" in getattr(item, "fixturenames", ()) or any(
        item.get_closest_marker(name) is not None for name in MARKERS
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
            from pytest_ascend.reporting import header_lines

            for line in header_lines(config.stash[plan_key]):
                _write_line(config, line)
    return config.stash[plan_key]


def _write_line(config: pytest.Config, line: str) -> None:
    """Straight to the terminal, past output capture (fixture setup runs captured)."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None:
        with capture.global_and_fixture_disabled() if capture else nullcontext():
            reporter.write_line(line)


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
    return _load(pytestconfig, ascend_plan, ascend_plan.settings.model)


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
def ascend_env(npu_device: Any) -> dict:
    """Versions and hardware facts of this run; every key present, None when unknown."""
    from pytest_ascend.environment import gather_environment

    return gather_environment(npu_device)


def _load(config: pytest.Config, plan: Any, spec: str) -> Any:
    from pytest_ascend.models import ModelLoadError, ModelSpecError, load_under_test

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
