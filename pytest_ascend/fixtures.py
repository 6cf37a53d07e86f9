"""pytest-ascend's fixtures: the device under test, the model, the tokenizer, the draft model,
the SGLang server and the measuring helpers a hardware test asks for.

Every fixture here is named `ascend_*` or built on `ascend_plan`: that is how the plugin tells
the suite's tests from a foreign project's (plugin.py, `_in_suite`). Each one asks the
session's owner (ascend_session.AscendSession), which loads or measures a thing once and
keeps it for the reports, and turns its one-line errors into a skip or failure without a
traceback.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Optional, Sequence

import pytest

from pytest_ascend.ascend_session import SessionUnusable, of
from pytest_ascend.settings import AscendSettings


@pytest.fixture(scope="session")
def ascend_settings(pytestconfig: pytest.Config) -> AscendSettings:
    """The resolved pytest-ascend settings (options, env vars, ini keys)."""
    return of(pytestconfig).settings


@pytest.fixture(scope="session")
def ascend_plan(pytestconfig: pytest.Config) -> Any:
    """The session plan: settings plus the resolved cards, dtype and placement."""
    return of(pytestconfig).plan(announce=True)


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
    return of(pytestconfig).box_findings()


@pytest.fixture(scope="session")
def model_under_test(ascend_plan: Any, pytestconfig: pytest.Config) -> Any:
    """The session's model, loaded once, with its load-time facts (ModelUnderTest)."""
    if ascend_plan.single_card_problem is not None:
        pytest.skip(ascend_plan.single_card_problem)
    return _unless_unusable(lambda: of(pytestconfig).model())


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
    return _unless_unusable(lambda: of(pytestconfig).model(spec))


@pytest.fixture
def ascend_soak(request: pytest.FixtureRequest, ascend_plan: Any,
                tmp_path: Any) -> Callable[[], Any]:
    """`ascend_soak()` runs the soak (--ascend-soak) on every selected card and returns its
    soak.runner.SoakResult; its files go under --ascend-report-dir/soak (else the test's
    tmp_path). Skips when no soak was asked for."""
    settings = ascend_plan.settings
    if settings.soak is None:
        pytest.skip("no soak asked for: pass --ascend-soak=DURATION (90s, 15m, 4h; or quick, "
                    "standard, long)")
    out_dir = (settings.report_dir if settings.report_dir is not None else tmp_path) / "soak"
    return lambda: _unless_unusable(lambda: of(request.config).soak(request.node, out_dir))


@pytest.fixture(scope="session")
def ascend_golden(ascend_plan: Any) -> Any:
    """The golden outputs the run is compared with (numerics.golden.Golden), checked at
    session start against the model under test."""
    if ascend_plan.golden is None:
        given = ascend_plan.settings.golden
        pytest.skip(f"--ascend-golden={given} holds accuracy records only, no token golden: "
                    f"record one with `pytest-ascend golden record --out {given}`"
                    if given is not None else
                    "no golden to compare with: pass --ascend-golden=DIR (record one on a "
                    "trusted machine with `pytest-ascend golden record --out DIR`)")
    return ascend_plan.golden


@pytest.fixture(scope="session")
def ascend_eval(ascend_plan: Any) -> Any:
    """The --ascend-eval set (accuracy.evalset.EvalSet), read and checked at session start;
    skips without one."""
    if ascend_plan.evalset is None:
        pytest.skip("no eval set: pass --ascend-eval=PATH (a GSM8K or multiple-choice JSONL "
                    "file; `arithmetic` for the shipped set)")
    return ascend_plan.evalset


@pytest.fixture
def ascend_accuracy(request: pytest.FixtureRequest, ascend_plan: Any
                    ) -> Callable[[Sequence[Any], str], Any]:
    """`ascend_accuracy(results, source)` records and compares a test's per-question results
    (--ascend-golden-record, --ascend-golden) and returns an accuracy.compare.AccuracyOutcome;
    every changed question goes into the test's report (`accuracy_changed`)."""
    ascend = of(request.config)

    def judge(results: Sequence[Any], source: str) -> Any:
        outcome = _unless_unusable(lambda: ascend.judge_accuracy(results, source))
        request.node.user_properties.append(("accuracy_changed", outcome.changed))
        for line in outcome.lines:
            ascend.progress(line)
        return outcome

    return judge


@pytest.fixture(scope="session")
def ascend_env(npu_device: Any, pytestconfig: pytest.Config) -> dict:
    """Versions and hardware facts of this run; every key present, None when unknown."""
    return of(pytestconfig).environment()


@pytest.fixture(scope="session")
def device_limits(ascend_plan: Any, pytestconfig: pytest.Config) -> Any:
    """The device's copy bandwidth and matmul rate in the session dtype (DeviceLimits),
    measured once per session (the roofline the perf suite's fractions refer to)."""
    return of(pytestconfig).limits()


@pytest.fixture
def memory_sampler(request: pytest.FixtureRequest, npu_device: Any) -> Iterator[Any]:
    """A background MemorySampler on the device under test for the whole test, every
    --ascend-memory-interval seconds; its series goes into the test's JSON-report metadata
    and results-log line (`memory_samples`)."""
    sampler = of(request.config).memory_sampler(request.node)
    yield sampler
    sampler.stop()


@pytest.fixture(scope="session")
def sglang_server(ascend_plan: Any, pytestconfig: pytest.Config,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """An SGLangClient for the session's server: --sglang-url connects to a running one;
    --sglang-launch starts one for the session's model on the cards the plan gives it, and
    stops its whole process tree at session end (Ctrl-C, SIGTERM and failures included)."""
    try:
        with of(pytestconfig).launched_server(tmp_path_factory.mktemp("sglang")) as server:
            yield server.client
    except SessionUnusable as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def ascend_perf_verdict(ascend_plan: Any, pytestconfig: pytest.Config
                        ) -> Callable[[Optional[str]], None]:
    """`ascend_perf_verdict(problem)` for a performance bound (`problem` None: it holds):
    a failure where performance is asserted (a real model, or --ascend-assert-perf), else a
    line on the terminal saying what was reported and not asserted."""
    ascend = of(pytestconfig)

    def verdict(problem: Optional[str]) -> None:
        if problem is None:
            return
        if ascend_plan.asserts_performance:
            pytest.fail(problem, pytrace=False)
        ascend.progress(f"reported, not asserted on a smoke run (--ascend-assert-perf "
                        f"asserts it): {problem}")

    return verdict


@pytest.fixture(scope="session")
def ascend_progress(pytestconfig: pytest.Config) -> Callable[[str], None]:
    """`ascend_progress(message)` writes one line to the terminal now, even under capture:
    long measurements report each configuration as it finishes."""
    return of(pytestconfig).progress


def _unless_unusable(make: Callable[[], Any]) -> Any:
    try:
        return make()
    except SessionUnusable as exc:
        pytest.fail(str(exc), pytrace=False)

