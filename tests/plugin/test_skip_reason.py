"""Which markers skip in which session, and that each reason names the option that enables
the test: `skip_reason` on real plans, without a pytest session around it (test_gating.py
shows the wiring once)."""

import pytest

from pytest_ascend.session import plan_session, skip_reason
from pytest_ascend.settings import resolve_settings


def plan(tmp_path, **cli):
    cli = {"cache": str(tmp_path), **cli}
    return plan_session(resolve_settings(cli=lambda spec: cli.get(spec.name),
                                         ini=lambda spec: None, environ={}))


def reason(plan, npu=False, slow=None, sglang=False):
    return skip_reason(plan, npu=npu, slow=slow, sglang=sglang)


def test_a_plain_suite_test_runs_on_the_tiny_model_on_the_cpu(tmp_path):
    assert reason(plan(tmp_path), npu=True) is None


def test_slow_skips_without_run_slow_and_names_it(tmp_path):
    assert reason(plan(tmp_path), npu=True, slow={}) == (
        "slow test: enable with --ascend-run-slow (or PYTEST_ASCEND_RUN_SLOW=1)")
    assert reason(plan(tmp_path, run_slow=True), npu=True, slow={}) is None


def test_slow_except_smoke_runs_on_the_builtin_model_only(tmp_path, checkpoint_dir):
    except_smoke = {"except_smoke": True}
    assert reason(plan(tmp_path), npu=True, slow=except_smoke) is None
    real = plan(tmp_path, model=str(checkpoint_dir), device="cpu")
    assert "--ascend-run-slow" in reason(real, npu=True, slow=except_smoke)
    assert reason(plan(tmp_path, model=str(checkpoint_dir), device="cpu", run_slow=True),
                  npu=True, slow=except_smoke) is None


def test_sglang_skips_naming_the_server_options(tmp_path):
    assert reason(plan(tmp_path), sglang=True) == (
        "needs a live SGLang server: pass --sglang-url URL or --sglang-launch")
    assert reason(plan(tmp_path, sglang_url="http://127.0.0.1:30000"), sglang=True) is None


def test_a_real_checkpoint_on_an_auto_chosen_cpu_skips_until_cpu_is_explicit(tmp_path,
                                                                             checkpoint_dir):
    auto = plan(tmp_path, model=str(checkpoint_dir))
    assert reason(auto, npu=True) == (
        f"no accelerator found (--ascend-device auto chose cpu) for the real checkpoint "
        f"{checkpoint_dir}: pass --ascend-device cpu to run it on the CPU anyway")
    assert reason(plan(tmp_path, model=str(checkpoint_dir), device="cpu"), npu=True) is None


def test_the_first_reason_wins_in_a_fixed_order(tmp_path, checkpoint_dir):
    """A test marked every way names the device problem first: enabling slow tests or a
    server would not make it run."""
    auto = plan(tmp_path, model=str(checkpoint_dir))
    assert reason(auto, npu=True, slow={}, sglang=True).startswith("no accelerator found")
    assert reason(plan(tmp_path), npu=True, slow={}, sglang=True).startswith("slow test")


@pytest.mark.parametrize("run_slow, assert_perf, real, asserted", [
    (False, False, False, False),  # a smoke run reports performance
    (False, True, False, True),  # unless --ascend-assert-perf
    (False, False, True, True),  # a real checkpoint is held to account
])
def test_performance_bounds_are_asserted_off_smoke_runs_or_when_asked(
        tmp_path, checkpoint_dir, run_slow, assert_perf, real, asserted):
    cli = {"assert_perf": assert_perf or None, "run_slow": run_slow or None}
    if real:
        cli.update(model=str(checkpoint_dir), device="cpu")
    assert plan(tmp_path, **cli).asserts_performance is asserted
