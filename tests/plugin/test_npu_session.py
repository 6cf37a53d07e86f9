"""What the session does with what the box is: a launch-blocking debug switch (a warning, no
performance asserted, no history comparison), a chip SGLang does not serve, a stack too old
for tensor parallel. The session is planned as a user's would be (on the host CPU), and its
cards are then NPU cards by name: what is under test is the session's questions to the
platform, not the device's measuring."""

import json
from dataclasses import replace

import pytest

from pytest_ascend.box.tensor_parallel import tensor_parallel_unsupported
from pytest_ascend.history.runs import load_runs
from pytest_ascend.platforms.cpu import CpuDevice
from pytest_ascend.platforms.npu import NpuPlatform
from pytest_ascend.reports.environment import gather_environment
from pytest_ascend.reports.provenance import header_lines
from pytest_ascend.session import plan_session, skip_reason
from pytest_ascend.settings import resolve_settings


def npu_plan(tmp_path, chip="Ascend910B3", **cli):
    cli = {"device": "cpu", "cache": str(tmp_path), **cli}
    plan = plan_session(resolve_settings(cli=lambda spec: cli.get(spec.name),
                                         ini=lambda spec: None, environ={}))
    card = CpuDevice(NpuPlatform())
    card.name = chip
    return replace(plan, cards=(card,))


def test_launch_blocking_warns_and_asserts_no_performance(tmp_path, monkeypatch):
    monkeypatch.setenv("ASCEND_LAUNCH_BLOCKING", "1")
    plan = npu_plan(tmp_path, assert_perf=True)
    assert not plan.asserts_performance
    warning = [line for line in header_lines(plan) if "WARNING" in line]
    assert len(warning) == 1 and "ASCEND_LAUNCH_BLOCKING=1" in warning[0]
    assert "ASCEND_LAUNCH_BLOCKING=1" in gather_environment(plan.device)["timing_caveat"]
    monkeypatch.delenv("ASCEND_LAUNCH_BLOCKING")
    plan = npu_plan(tmp_path, assert_perf=True)
    assert plan.asserts_performance
    assert not [line for line in header_lines(plan) if "WARNING" in line]


def _run(caveat):
    """A pytest-benchmark run as the history reads it, with the ascend block's caveat."""
    ascend = {"device_kind": "npu", "device_name": "Ascend910B3", "model": "m",
              "dtype": "float16", "smoke": False, "cann": "8.0.RC3", "timing_caveat": caveat}
    return {"machine_info": {"ascend": ascend}, "datetime": "2026-12-02T05:00:00",
            "benchmarks": [{"fullname": "t::test", "stats": {"data": [1.0, 1.1]},
                            "extra_info": {}}]}


def test_history_does_not_compare_a_launch_blocking_run(tmp_path):
    caveat = NpuPlatform().timing_caveat({"ASCEND_LAUNCH_BLOCKING": "1"})
    (tmp_path / "blocking.json").write_text(json.dumps(_run(caveat)))
    (tmp_path / "normal.json").write_text(json.dumps(_run(None)))
    runs, skipped = load_runs(None, [tmp_path / "blocking.json", tmp_path / "normal.json"])
    assert [run.source for run in runs] == [str(tmp_path / "normal.json")]
    assert len(skipped) == 1 and "ASCEND_LAUNCH_BLOCKING=1" in skipped[0].reason


@pytest.mark.parametrize("chip, skipped", [("Ascend910A", True), ("Ascend910B", True),
                                           ("Ascend910B4", False)])
def test_sglang_tests_skip_on_a_chip_sglang_does_not_serve(tmp_path, chip, skipped):
    plan = npu_plan(tmp_path, chip, sglang_launch=True)
    reason = skip_reason(plan, npu=True, slow=None, sglang=True)
    if skipped:
        assert reason is not None and chip in reason and "SGLang" in reason
    else:
        assert reason is None or "SGLang does not support" not in reason


def test_tensor_parallel_names_the_versions_it_needs(monkeypatch):
    import transformers

    monkeypatch.setattr(transformers, "__version__", "4.45.2")
    reason = tensor_parallel_unsupported()
    assert "transformers >= 4.50" in reason and "installed 4.45.2" in reason
    assert "\n" not in reason


def test_tensor_parallel_is_offered_exactly_where_the_stack_has_it():
    import torch
    import transformers
    from packaging.version import Version

    recent = (Version(torch.__version__.split("+")[0]) >= Version("2.5")
              and Version(transformers.__version__) >= Version("4.50"))
    reason = tensor_parallel_unsupported()
    assert (reason is None) == recent, reason
    if reason is not None:  # the oldest claimed stack: torch 2.4.1 / transformers 4.45.2
        assert torch.__version__ in reason or transformers.__version__ in reason
