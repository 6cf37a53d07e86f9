"""What one card is checked and measured by: matmul against float64, copy bandwidth each
way, matmul rate.

Matmul accuracy: the reference is float64 on the CPU from the same (already rounded)
inputs, so the error measures the card's arithmetic alone. Bounds are multiples of the
dtype's unit roundoff u: rounding the output alone costs ~0.6u (RMS, relative); accumulating
1024 products in the input precision instead of float32 would cost ~u*sqrt(1024) = 32u and
fails the half-precision bounds; TF32/HF32 silently used for float32 (u = 2^-11) fails the
float32 bound by two orders of magnitude. (torch_npu leaves HF32 off for matmul by default,
`torch.npu.matmul.allow_hf32 = False`; a 910B-or-later box where float32 matmul fails here
has had it switched on.) A dtype the chip does not compute as asked is not checked against
its bound: bf16 on a chip without it, float32 on a 910A, whose default precision mode runs
it in float16 (the platform says why: `matmul_not_applicable`).

Copies: host->device and device->host from and to pinned host memory on an accelerator (the
DMA path DMI and nvbandwidth measure; pageable memory adds a host staging copy), counted as
bytes moved; on-device copies count bytes read plus bytes written, as the roofline does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch

from pytest_ascend.measure.roofline import TimedKernel, copy_kernel, limit_sizes

MATMUL_SIZE = 1024
UNIT_ROUNDOFF = {torch.float16: 2.0**-11, torch.bfloat16: 2.0**-8, torch.float32: 2.0**-24}
BOUND_IN_U = {torch.float16: 4.0, torch.bfloat16: 4.0, torch.float32: 64.0}

COPY_DIRECTIONS = ("h2d", "d2h", "d2d")
COPY_METRICS = {direction: f"{direction}_gb_s" for direction in COPY_DIRECTIONS}
MATMUL_METRIC = "matmul_tflops"
CARD_METRICS = (*COPY_METRICS.values(), MATMUL_METRIC)  # all higher-is-better


@dataclass(frozen=True)
class MatmulAccuracy:
    dtype: torch.dtype
    error: float  # relative Frobenius error against float64
    bound: float
    finite: bool

    @property
    def ok(self) -> bool:
        return self.finite and self.error < self.bound


def matmul_not_applicable(card: Any, dtype: torch.dtype) -> Optional[str]:
    """Why `card`'s platform says a `dtype` matmul cannot be held to `dtype`'s bound (no
    bf16 or no float16 matmul; float32 computed in a reduced precision), or None."""
    if dtype == torch.float16:
        return card.platform.float16_matmul_unsupported(card)
    if dtype == torch.bfloat16:
        return card.platform.bf16_unsupported(card)
    if dtype == torch.float32:
        return card.platform.float32_matmul_reduced(card)
    return None


def matmul_accuracy(card: Any, dtype: torch.dtype, size: int = MATMUL_SIZE,
                    seed: int = 1234) -> MatmulAccuracy:
    """A `size` x `size` matmul on `card` in `dtype` against float64 on the host."""
    generator = torch.Generator().manual_seed(seed)
    a = torch.randn(size, size, generator=generator).to(dtype)
    b = torch.randn(size, size, generator=generator).to(dtype)
    reference = a.double() @ b.double()
    result = (a.to(card.torch_device) @ b.to(card.torch_device)).cpu()  # .cpu() waits
    finite = bool(torch.isfinite(result).all())
    error = float((result.double() - reference).norm() / reference.norm())
    return MatmulAccuracy(dtype, error, BOUND_IN_U[dtype] * UNIT_ROUNDOFF[dtype], finite)


def box_sizes(card: Any, dtype: str) -> tuple[int, int]:
    """Copy bytes and matmul size per card: the roofline's on a card with its own memory; on
    a host stand-in, sizes that keep an eight-card sweep within seconds."""
    if card.platform.has_device_memory:
        return limit_sizes(card, dtype)
    return 32 << 20, 256


def host_buffer(card: Any, nbytes: int) -> torch.Tensor:
    """Host memory for `card`'s transfers: pinned where the card has memory of its own (the
    DMA path; pinning needs that device's runtime to register the pages with)."""
    return torch.empty(nbytes // 4, dtype=torch.float32,
                       pin_memory=card.platform.has_device_memory).fill_(1.0)


def copy_bandwidth_kernel(card: Any, direction: str, nbytes: int,
                          host: Optional[torch.Tensor] = None) -> TimedKernel:
    """A kernel moving `nbytes` in `direction` (h2d, d2h, d2d); its rate is bytes per second
    as the module docstring counts them. `host` lends a host buffer (cards of one box take
    turns with one, rather than pinning eight)."""
    if direction == "d2d":
        return copy_kernel(card, nbytes)
    if host is None:
        host = host_buffer(card, nbytes)
    pinned = host.is_pinned()
    on_card = torch.empty(host.shape, dtype=torch.float32, device=card.torch_device)
    if direction == "h2d":
        def move() -> None:
            on_card.copy_(host, non_blocking=pinned)
    elif direction == "d2h":
        def move() -> None:
            host.copy_(on_card, non_blocking=pinned)
    else:
        raise ValueError(f"unknown copy direction {direction!r}: use one of "
                         f"{', '.join(COPY_DIRECTIONS)}")
    return TimedKernel(card, move, host.numel() * host.element_size())
