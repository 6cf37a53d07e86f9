"""pytest-ascend's fixtures: the device under test, the model, the tokenizer, the draft model,
the SGLang server and the measuring helpers a hardware test asks for.

Every fixture here is named `ascend_*` or built on `ascend_plan`: that is how the plugin tells
the suite's tests from a foreign project's (plugin.py, `_in_suite`). Each one hands over to
domain code that knows nothing of pytest and turns its one-line errors into a failure without
a traceback.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any, Callable, Optional

import pytest

from pytest_ascend import stash
from pytest_ascend.settings import AscendSettings


@pytest.fixture(scope="session")
def ascend_settings(pytestconfig: pytest.Config) -> AscendSettings:
    """The resolved pytest-ascend settings (options, env vars, ini keys)."""
    return pytestconfig.stash[stash.settings_key]


@pytest.fixture(scope="session")
def ascend_plan(pytestconfig: pytest.Config) -> Any:
    """The session plan: settings plus the resolved device and dtype."""
    return pytestconfig.stash[stash.plan_key]


@pytest.fixture(scope="session")
def npu_device(ascend_plan: Any) -> Any:
    """The DeviceUnderTest (npu, cuda, cpu or another platform's) this session measures."""
    return ascend_plan.device


@pytest.fixture(scope="session")
def ascend_cards(ascend_plan: Any) -> tuple:
    """Every selected card (--ascend-devices), a DeviceUnderTest each, in selection order."""
    return ascend_plan.cards


@pytest.fixture
def ascend_card(request: pytest.FixtureRequest, ascend_plan: Any) -> Any:
    """One selected card: a test that asks for it runs once per card (the plugin's
    pytest_generate_tests parametrizes it)."""
    return ascend_plan.cards[request.param]


@pytest.fixture(scope="session")
def ascend_box(pytestconfig: pytest.Config) -> Any:
    """The box's findings (card sweep, link matrix, stragglers), printed as tables at the
    end of the session."""
    from pytest_ascend.box.findings import BoxFindings

    return pytestconfig.stash.setdefault(stash.box_key, BoxFindings())


@pytest.fixture(scope="session")
def model_under_test(ascend_plan: Any, pytestconfig: pytest.Config) -> Any:
    """The session's model, loaded once, with its load-time facts (ModelUnderTest)."""
    if ascend_plan.single_card_problem is not None:
        pytest.skip(ascend_plan.single_card_problem)
    loaded = _load(pytestconfig, ascend_plan, ascend_plan.settings.model)
    pytestconfig.stash[stash.model_key] = loaded
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
def ascend_golden(ascend_plan: Any) -> Any:
    """The golden outputs the run is compared with (numerics.golden.Golden), checked at
    session start against the model under test."""
    if ascend_plan.golden is None:
        pytest.skip("no golden to compare with: pass --ascend-golden=DIR (record one on a "
                    "trusted machine with `pytest-ascend golden record --out DIR`)")
    return ascend_plan.golden


@pytest.fixture(scope="session")
def ascend_env(npu_device: Any, pytestconfig: pytest.Config) -> dict:
    """Versions and hardware facts of this run; every key present, None when unknown."""
    return stash.environment(pytestconfig, npu_device)


@pytest.fixture(scope="session")
def device_limits(ascend_plan: Any, pytestconfig: pytest.Config) -> Any:
    """The device's copy bandwidth and matmul rate in the session dtype (DeviceLimits),
    measured once per session (the roofline the perf suite's fractions refer to)."""
    from pytest_ascend.measure.roofline import measure_device_limits
    from pytest_ascend.reports.progress import limits_line

    say = stash.progress(pytestconfig)
    say("measuring device copy bandwidth and matmul rate")
    limits = measure_device_limits(ascend_plan.device, ascend_plan.dtype)
    pytestconfig.stash[stash.limits_key] = limits
    say(limits_line(limits))
    return limits


@pytest.fixture
def memory_sampler(request: pytest.FixtureRequest, npu_device: Any,
                   ascend_settings: AscendSettings) -> Any:
    """A background MemorySampler on the device under test for the whole test, every
    --ascend-memory-interval seconds; its series goes into the test's JSON-report metadata
    and results-log line (`memory_samples`)."""
    from pytest_ascend.measure.memory import MemorySampler

    sampler = MemorySampler(npu_device, ascend_settings.memory_interval).start()
    request.node.stash[stash.sampler_key] = sampler
    yield sampler
    sampler.stop()


@pytest.fixture(scope="session")
def sglang_server(ascend_plan: Any, pytestconfig: pytest.Config,
                  tmp_path_factory: pytest.TempPathFactory) -> Any:
    """An SGLangClient for the session's server: --sglang-url connects to a running one;
    --sglang-launch starts one for the session's model on the device under test and stops
    its whole process tree at session end (Ctrl-C and failures included)."""
    from pytest_ascend.serving.sglang_server import ServerError, session_server

    with ExitStack() as stack:
        try:
            server = stack.enter_context(session_server(
                ascend_plan, tmp_path_factory.mktemp("sglang"), stash.progress(pytestconfig)))
        except ServerError as exc:
            pytest.fail(str(exc), pytrace=False)
        pytestconfig.stash[stash.server_key] = server
        yield server.client


@pytest.fixture(scope="session")
def ascend_perf_verdict(ascend_plan: Any, pytestconfig: pytest.Config
                        ) -> Callable[[Optional[str]], None]:
    """`ascend_perf_verdict(problem)` for a performance bound (`problem` None: it holds):
    a failure where performance is asserted (a real model, or --ascend-assert-perf), else a
    line on the terminal saying what was reported and not asserted."""
    say = stash.progress(pytestconfig)

    def verdict(problem: Optional[str]) -> None:
        if problem is None:
            return
        if ascend_plan.asserts_performance:
            pytest.fail(problem, pytrace=False)
        say(f"reported, not asserted on a smoke run (--ascend-assert-perf asserts it): "
            f"{problem}")

    return verdict


@pytest.fixture(scope="session")
def ascend_progress(pytestconfig: pytest.Config) -> Callable[[str], None]:
    """`ascend_progress(message)` writes one line to the terminal now, even under capture:
    long measurements report each configuration as it finishes."""
    return stash.progress(pytestconfig)


def _load(config: pytest.Config, plan: Any, spec: str) -> Any:
    from pytest_ascend.model.loading import (
        ModelLoadError,
        ModelSpecError,
        load_under_test,
    )

    try:
        return load_under_test(
            spec,
            plan.device,
            plan.dtype,
            cache_dir=plan.settings.cache,
            trust_remote_code=plan.settings.trust_remote_code,
            base_spec=plan.settings.model,
            progress=stash.progress(config),
        )
    except (ModelSpecError, ModelLoadError) as exc:
        pytest.fail(str(exc), pytrace=False)
