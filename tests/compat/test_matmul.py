"""Dense matmul on the device agrees with a float64 reference computed on the CPU.

The reference uses the same (already rounded) inputs, so the error measures the device's
arithmetic alone. Bounds are multiples of the dtype's unit roundoff u: rounding the output
alone costs ~0.6u (RMS, relative); accumulating 1024 products in the input precision instead
of float32 would cost ~u*sqrt(1024) = 32u and fails the half-precision bounds; TF32/HF32
silently used for float32 (u = 2^-11) fails the float32 bound by two orders of magnitude.
(torch_npu leaves HF32 off for matmul by default, `torch.npu.matmul.allow_hf32 = False`,
and on for convolutions; a box where float32 matmul fails here has had it switched on.)
"""

import pytest
import torch

pytestmark = pytest.mark.npu

N = 1024
UNIT_ROUNDOFF = {torch.float16: 2.0**-11, torch.bfloat16: 2.0**-8, torch.float32: 2.0**-24}
BOUND_IN_U = {torch.float16: 4.0, torch.bfloat16: 4.0, torch.float32: 64.0}


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32], ids=str)
def test_matmul_matches_float64_reference(npu_device, dtype, record_property):
    generator = torch.Generator().manual_seed(1234)
    a = torch.randn(N, N, generator=generator).to(dtype)
    b = torch.randn(N, N, generator=generator).to(dtype)
    reference = a.double() @ b.double()

    result = (a.to(npu_device.torch_device) @ b.to(npu_device.torch_device)).cpu()  # waits

    assert result.dtype == dtype
    assert torch.isfinite(result).all(), f"{dtype} matmul produced inf/NaN"
    error = float((result.double() - reference).norm() / reference.norm())
    bound = BOUND_IN_U[dtype] * UNIT_ROUNDOFF[dtype]
    record_property("relative_error", error)
    assert error < bound, (
        f"{dtype} {N}x{N} matmul on {npu_device.torch_device}: relative error {error:.3g} "
        f"exceeds {bound:.3g} ({BOUND_IN_U[dtype]:g} x unit roundoff)"
    )
