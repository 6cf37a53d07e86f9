"""A short HBM pattern check: known patterns written over a large share of free memory, read
back and compared on the card, each mismatch named by its byte offset.

Patterns, as in memtest-style checks: all zeros, all ones, alternating bits both ways (a bit
stuck at either level, or coupled to its neighbour), and each 32-bit word's own index (an
address line that maps two words onto one). Comparison runs on the card; only the count and
the first few mismatches travel back.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import torch

WORD = 4  # bytes: patterns are int32 words
PATTERNS: dict[str, Optional[int]] = {  # None: the word's index within the checked region
    "zeros": 0x00000000,
    "ones": 0xFFFFFFFF,
    "0xAA": 0xAAAAAAAA,
    "0x55": 0x55555555,
    "address": None,
}
SHARE_OF_FREE = 0.5  # of an accelerator's free memory; the rest stays for the runtime
HOST_STAND_IN_BYTES = 64 << 20  # a card without memory of its own checks this much
MAX_CHUNK = 1 << 30
SHOWN = 8  # mismatches kept per check


def _as_int32(word: int) -> int:
    return word - (1 << 32) if word >= 1 << 31 else word


@dataclass(frozen=True)
class PatternFault:
    pattern: str
    offset: int  # bytes from the start of the checked region
    expected: int
    found: int

    def describe(self) -> str:
        return (f"pattern {self.pattern} at byte offset {self.offset:#x}: expected "
                f"{self.expected & 0xFFFFFFFF:#010x}, read {self.found & 0xFFFFFFFF:#010x}")


@dataclass
class PatternReport:
    card: int
    bytes_checked: int
    seconds: float = 0.0
    mismatches: int = 0
    faults: list = field(default_factory=list)  # the first SHOWN PatternFaults

    @property
    def ok(self) -> bool:
        return self.mismatches == 0 and self.bytes_checked > 0

    def describe(self) -> str:
        shown = "; ".join(fault.describe() for fault in self.faults)
        return (f"card {self.card}: {self.mismatches} mismatched word(s) in "
                f"{self.bytes_checked / 2**20:.0f} MiB: {shown}")


def share_to_check(card: Any) -> int:
    """Bytes to check: half the card's free memory, or a fixed amount on a host stand-in."""
    free = card.memory().free if card.platform.has_device_memory else None
    if free is None:
        return HOST_STAND_IN_BYTES
    return int(free * SHARE_OF_FREE) // WORD * WORD


def expected_words(pattern: str, first_word: int, count: int, device: torch.device) -> Any:
    """The words `pattern` puts at word indices first_word .. first_word + count - 1 (a scalar
    for a constant pattern)."""
    word = PATTERNS[pattern]
    if word is not None:
        return _as_int32(word)
    # int32 wraps past 2^31 words (8 GiB): a repeating address pattern, still distinct
    # within any 8 GiB window.
    return torch.arange(first_word, first_word + count, dtype=torch.int64,
                        device=device).to(torch.int32)


def write_pattern(chunk: torch.Tensor, pattern: str, first_word: int) -> None:
    """Write `pattern` over `chunk` on its device. A constant is a `fill_`: copying a host
    scalar into a device tensor expands it to the chunk's size on the host first (torch_npu's
    CopyKernel), 1 GiB of host memory churned per chunk; the address pattern is computed on
    the device and copied there."""
    word = PATTERNS[pattern]
    if word is not None:
        chunk.fill_(_as_int32(word))
    else:
        chunk.copy_(expected_words(pattern, first_word, chunk.numel(), chunk.device))


def find_mismatches(region: torch.Tensor, expected: Any, pattern: str, first_word: int,
                    limit: int = SHOWN) -> tuple[int, list[PatternFault]]:
    """How many words of `region` differ from `expected`, and the first `limit` of them."""
    wrong = region != expected
    count = int(wrong.sum())
    if not count:
        return 0, []
    where = torch.nonzero(wrong).flatten()[:limit].cpu()
    found = region[where.to(region.device)].cpu()
    want = (torch.full_like(found, expected) if not isinstance(expected, torch.Tensor)
            else expected[where.to(expected.device)].cpu())
    return count, [PatternFault(pattern, (first_word + int(i)) * WORD, int(e), int(f))
                   for i, e, f in zip(where.tolist(), want.tolist(), found.tolist())]


def check_memory_patterns(card: Any, nbytes: Optional[int] = None,
                          after_write: Optional[Callable[[torch.Tensor], None]] = None
                          ) -> PatternReport:
    """Write every pattern over `nbytes` (default: `share_to_check`) of `card`, in chunks of
    at most 1 GiB allocated together, then read back and compare.

    `after_write` sees each chunk between writing and reading: where a box has a fault
    injector (or a test plants one), it goes there.
    """
    nbytes = share_to_check(card) if nbytes is None else nbytes
    words = nbytes // WORD
    sizes = [min(MAX_CHUNK // WORD, words - start) for start in range(0, words, MAX_CHUNK // WORD)]
    report = PatternReport(card.index, 0)
    started = time.perf_counter()
    chunks = []
    try:
        for size in sizes:
            chunks.append(torch.empty(size, dtype=torch.int32, device=card.torch_device))
    except (RuntimeError, MemoryError):  # less free than reported: check what was obtained
        card.empty_cache()
    for pattern in PATTERNS:
        first = 0
        for chunk in chunks:
            write_pattern(chunk, pattern, first)
            first += chunk.numel()
        card.synchronize()
        first = 0
        for chunk in chunks:
            if after_write is not None:
                after_write(chunk)
            count, faults = find_mismatches(
                chunk, expected_words(pattern, first, chunk.numel(), chunk.device), pattern,
                first)
            report.mismatches += count
            report.faults.extend(faults[:SHOWN - len(report.faults)])
            first += chunk.numel()
    card.synchronize()
    report.bytes_checked = sum(chunk.numel() for chunk in chunks) * WORD
    report.seconds = time.perf_counter() - started
    del chunks
    card.empty_cache()
    return report
