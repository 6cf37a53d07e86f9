"""Dense matmul on the device under test agrees with a float64 reference computed on the CPU
(pytest_ascend.box.card_checks says how the bounds are set; tests/box checks every card)."""

import pytest
import torch

from pytest_ascend.box.card_checks import MATMUL_SIZE, matmul_accuracy, matmul_not_applicable

pytestmark = pytest.mark.npu


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32], ids=str)
def test_matmul_matches_float64_reference(npu_device, dtype, record_property):
    reason = matmul_not_applicable(npu_device, dtype)
    if reason is not None:
        pytest.skip(reason)
    accuracy = matmul_accuracy(npu_device, dtype)
    record_property("relative_error", accuracy.error)
    assert accuracy.finite, f"{dtype} matmul produced inf/NaN"
    assert accuracy.ok, (
        f"{dtype} {MATMUL_SIZE}x{MATMUL_SIZE} matmul on {npu_device.torch_device}: relative "
        f"error {accuracy.error:.3g} exceeds {accuracy.bound:.3g}"
    )
