"""The soak's three workloads on one card, each run the same way every iteration so that its
output must repeat bit for bit: greedy decode of the model on fixed prompts (fixed shapes: a
batch of prompts cut to one length, a fixed number of steps), a large matmul from fixed
inputs, and HBM pattern passes.

Each run gives an `Outcome`: a digest of everything it computed (every step's logits, every
element of the product), the digests of its parts (a step, a row) for naming where two cards
first differ, and what it was wrong about absolutely (a pattern word read back wrong, a
product off its float64 reference). The first run is kept on the card (or the host) as the
reference, so that a later run that differs is named to the element.

`corrupt=True` flips the lowest bit of one output element before it is digested: the test
hook that stands for a silent data corruption.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import torch

from pytest_ascend.box.card_checks import BOUND_IN_U, UNIT_ROUNDOFF, matmul_not_applicable
from pytest_ascend.box.memory_patterns import check_memory_patterns, share_to_check

SEED = 20261202
PROMPTS = 4  # the decode batch
PROMPT_TOKENS = 48
DECODE_STEPS = 32
MATMUL_SIZE = {True: 8192, False: 1024}  # by whether the card has memory of its own
HOST_PATTERN_BYTES = 8 << 20  # a host stand-in's pass, short enough to leave decode the time
REFERENCE_ROWS = 8  # rows of the first product checked against float64 on the host
_SAME_WIDTH_INT = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


@dataclass
class Outcome:
    workload: str
    digest: str
    parts: list[str]  # per `unit` (a decode step, a product row)
    unit: str
    seconds: float  # the timed region, the device synchronized around it
    work: float  # tokens decoded, or floating-point operations
    fault: Optional[str] = None  # wrong against what is known to be right
    difference: Optional[str] = None  # where it first differs from the card's first run
    notes: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.work / self.seconds if self.seconds > 0 else 0.0


def digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def tensor_bytes(tensor: torch.Tensor) -> bytes:
    """The tensor's bits, on the host, whatever its dtype (bfloat16 has no numpy twin)."""
    host = tensor.detach().contiguous().cpu()
    return host.view(_SAME_WIDTH_INT[host.element_size()]).numpy().tobytes()


def flip_lowest_bit(tensor: torch.Tensor, flat_index: int) -> None:
    """Flip the lowest bit of one element, in place: a change no tolerance would see."""
    ints = tensor.view(-1).view(_SAME_WIDTH_INT[tensor.element_size()])
    ints[flat_index] = ints[flat_index] ^ 1


def first_difference(now: torch.Tensor, reference: torch.Tensor, names: Callable[[tuple], str]
                     ) -> Optional[str]:
    """Where `now` first differs from `reference` bit for bit, named by `names(index)`, with
    both values; None when they are identical."""
    a = now.view(_SAME_WIDTH_INT[now.element_size()])
    b = reference.to(now.device).view(_SAME_WIDTH_INT[now.element_size()])
    wrong = torch.nonzero(a != b)
    if not len(wrong):
        return None
    index = tuple(int(i) for i in wrong[0])
    return (f"{names(index)}: {float(now[index])!r} instead of {float(reference[index])!r} "
            f"({len(wrong)} element(s) differ)")


class DecodeWorkload:
    """Greedy decode of PROMPTS prompts, each cut to PROMPT_TOKENS tokens (no padding), for
    DECODE_STEPS steps through the KV cache; every step's logits kept and digested. The rate
    is decoded tokens per second over the decode steps (prefill excluded)."""

    name = "decode"
    unit = "step"

    def __init__(self, model: Any, tokenizer: Any, card: Any,
                 delay_per_step_s: float = 0.0) -> None:
        from pytest_ascend.model.prompts import SEED_PROMPTS, chat_prompt, long_prompt_ids

        self.model, self.card, self.delay_per_step_s = model, card, delay_per_step_s
        filler = long_prompt_ids(tokenizer, PROMPT_TOKENS)
        rows = []
        for key in list(SEED_PROMPTS)[:PROMPTS]:
            ids = tokenizer(chat_prompt(tokenizer, SEED_PROMPTS[key]),
                            add_special_tokens=False)["input_ids"]
            rows.append((filler + list(ids))[-PROMPT_TOKENS:])
        self.input_ids = torch.tensor(rows, device=card.torch_device)
        self.reference: Optional[Outcome] = None
        self.reference_logits: Optional[torch.Tensor] = None  # on the host

    def run(self, corrupt: bool = False) -> Outcome:
        from pytest_ascend.model.hf_compat import forward_kwargs, output_cache

        model = self.model
        with torch.inference_mode():
            out = model(input_ids=self.input_ids, **forward_kwargs(model))
            kept = [out.logits[:, -1, :]]
            token = kept[0].argmax(dim=-1, keepdim=True)
            self.card.synchronize()
            with self.card.timer() as timing:
                for _ in range(DECODE_STEPS - 1):
                    out = model(input_ids=token, **forward_kwargs(model, output_cache(out)))
                    kept.append(out.logits[:, -1, :])
                    token = kept[-1].argmax(dim=-1, keepdim=True)
                    if self.delay_per_step_s:
                        time.sleep(self.delay_per_step_s)
            logits = torch.stack(kept, dim=1).cpu()  # [prompts, steps, vocab]
        if corrupt:
            flip_lowest_bit(logits, logits[0, 0].numel() * (DECODE_STEPS // 2) + 7)
        return self._outcome(logits, timing.elapsed_ms / 1e3)

    def _outcome(self, logits: torch.Tensor, seconds: float) -> Outcome:
        parts = [digest(tensor_bytes(logits[:, step])) for step in range(logits.shape[1])]
        outcome = Outcome(self.name, digest("".join(parts).encode()), parts, self.unit,
                          seconds, float(logits.shape[0] * (logits.shape[1] - 1)))
        if self.reference is None:
            self.reference, self.reference_logits = outcome, logits
        elif outcome.digest != self.reference.digest:
            outcome.difference = first_difference(logits, self.reference_logits, lambda i: (
                f"step {i[1]}, prompt {i[0]}, token id {i[2]}"))
        return outcome


class MatmulWorkload:
    """One square matmul in the session dtype from fixed seeded inputs, timed; its first
    product's sampled rows held to a float64 reference on the host (the bound of the box's
    matmul check), every later product to the first bit for bit."""

    name = "matmul"
    unit = "row"

    def __init__(self, card: Any, dtype: str, size: Optional[int] = None) -> None:
        self.card = card
        self.dtype = getattr(torch, dtype)
        self.size = size or MATMUL_SIZE[bool(card.platform.has_device_memory)]
        generator = torch.Generator().manual_seed(SEED)
        self.a_host = torch.randn(self.size, self.size, generator=generator).to(self.dtype)
        self.b_host = torch.randn(self.size, self.size, generator=generator).to(self.dtype)
        self.a = self.a_host.to(card.torch_device)
        self.b = self.b_host.to(card.torch_device)
        self.reference: Optional[Outcome] = None
        self.reference_product: Optional[torch.Tensor] = None  # on the card

    def run(self, corrupt: bool = False) -> Outcome:
        self.card.synchronize()
        with self.card.timer() as timing:
            product = self.a @ self.b
        if corrupt:
            flip_lowest_bit(product, (self.size // 3) * self.size + self.size // 5)
        host = product.cpu()
        parts = [digest(tensor_bytes(host[row])) for row in range(self.size)]
        outcome = Outcome(self.name, digest("".join(parts).encode()), parts, self.unit,
                          timing.elapsed_ms / 1e3, 2.0 * self.size ** 3)
        if self.reference is None:
            self.reference, self.reference_product = outcome, product
            outcome.fault = self._against_float64(host)
            skipped = matmul_not_applicable(self.card, self.dtype)
            if skipped:
                outcome.notes.append(f"float64 reference not applied: {skipped}")
        elif outcome.digest != self.reference.digest:
            outcome.difference = first_difference(product, self.reference_product, lambda i: (
                f"row {i[0]}, column {i[1]}"))
        return outcome

    def _against_float64(self, host: torch.Tensor) -> Optional[str]:
        if matmul_not_applicable(self.card, self.dtype):
            return None
        rows = torch.linspace(0, self.size - 1, REFERENCE_ROWS).long()
        exact = self.a_host[rows].double() @ self.b_host.double()
        error = float((host[rows].double() - exact).norm() / exact.norm())
        bound = BOUND_IN_U[self.dtype] * UNIT_ROUNDOFF[self.dtype]
        if error < bound and bool(torch.isfinite(host[rows]).all()):
            return None
        return (f"rows {rows.tolist()} are off their float64 reference: relative error "
                f"{error:.3g}, bound {bound:.3g}")


class PatternWorkload:
    """The box's HBM pattern check (box.memory_patterns) over its share of free memory: each
    word is checked against the pattern written, so a fault is named by its byte offset."""

    name = "hbm_patterns"
    unit = "pattern"

    def __init__(self, card: Any) -> None:
        self.card = card
        self.nbytes = (share_to_check(card) if card.platform.has_device_memory
                       else HOST_PATTERN_BYTES)

    def run(self, corrupt: bool = False) -> Outcome:
        flipped = []

        def plant(chunk: torch.Tensor) -> None:
            if corrupt and not flipped:
                flip_lowest_bit(chunk, 12345)
                flipped.append(True)

        report = check_memory_patterns(self.card, self.nbytes, after_write=plant)
        # Every word was checked against the pattern itself: a fault is named as such, and
        # the digest stays that of the check, the same on every card and iteration.
        return Outcome(self.name, digest(f"{report.bytes_checked}".encode()), [], self.unit,
                       report.seconds, float(report.bytes_checked),
                       None if report.ok else report.describe())
