"""NaN logits are blamed on their real cause: a damaged checkpoint, a float16 overflow, or a
stack that computes wrong values in a dtype that cannot overflow."""

import shutil

import pytest
from safetensors.torch import load_file, save_file

from pytest_ascend.numerics.nonfinite import diagnose_nonfinite_logits, nonfinite_parameters

COMPAT_INFERENCE = "tests/compat/test_inference.py::test_logits_are_finite_on_seed_prompts"


@pytest.fixture
def nan_checkpoint(checkpoint_dir, tmp_path):
    """A copy of the tiny checkpoint with NaN in one layer's weights, as a bad conversion
    leaves it."""
    damaged = tmp_path / "Damaged-Checkpoint"
    shutil.copytree(checkpoint_dir, damaged)
    weights = damaged / "model.safetensors"
    tensors = load_file(str(weights))
    name = next(n for n in sorted(tensors) if n.endswith("mlp.down_proj.weight"))
    tensors[name][0, :4] = float("nan")
    save_file(tensors, str(weights), metadata={"format": "pt"})
    return damaged, name


def test_nan_weights_are_named_whatever_the_dtype(tiny, nan_checkpoint):
    from pytest_ascend.model.loading import load_under_test
    from pytest_ascend.platforms.cpu import CpuDevice

    path, name = nan_checkpoint
    model = load_under_test(str(path), CpuDevice(), "float32").model
    assert nonfinite_parameters(model) == [(name, 4)]
    message = diagnose_nonfinite_logits(model, "float32", ["qa_capital"])
    assert "the weights themselves hold NaN/inf" in message and name in message
    assert "bfloat16" not in message


def test_finite_weights_in_float16_are_an_overflow(tiny):
    assert nonfinite_parameters(tiny.model) == []
    assert "rerun with --ascend-dtype bfloat16" in diagnose_nonfinite_logits(
        tiny.model, "float16", ["p"])


def test_finite_weights_in_float32_blame_the_stack_not_the_dtype(tiny):
    message = diagnose_nonfinite_logits(tiny.model, "float32", ["p"])
    assert "a kernel of this stack computed wrong values" in message
    assert "bfloat16" not in message


def test_the_compat_check_on_a_nan_checkpoint_says_what_is_wrong(pytester, nan_checkpoint):
    """The reviewer's case: a NaN checkpoint in float32 was diagnosed as a float16 overflow."""
    path, name = nan_checkpoint
    root = pytester.path
    shutil.copytree(__import__("pathlib").Path(__file__).resolve().parents[1] / "compat",
                    root / "tests" / "compat")
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", f"--ascend-model={path}", "--ascend-device=cpu",
        "--ascend-dtype=float32", COMPAT_INFERENCE)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([f"*the weights themselves hold NaN/inf*first {name}*"])
    assert "rerun with --ascend-dtype bfloat16" not in result.stdout.str()
