"""Every card and every link measured in one interleaved sweep, so that siblings are
compared under the same conditions.

Measured one card after another, a card whose turn coincides with someone else's job on the
box looks slow and fails a healthy card. So the sweep rotates: each round measures every
(card, metric) once, in an order that shifts every round, and a figure is the best round
(the rate least disturbed by other work, as the roofline takes it). A card that is slow
every round is slow; one unlucky round is not.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import permutations
from typing import Any, Callable, Optional, Sequence

import torch

from pytest_ascend.box.card_checks import (
    COPY_DIRECTIONS,
    COPY_METRICS,
    MATMUL_METRIC,
    box_sizes,
    copy_bandwidth_kernel,
    host_buffer,
)
from pytest_ascend.measure.interleave import alternate
from pytest_ascend.measure.roofline import TimedKernel, matmul_kernel

ROUNDS = 5
LINK_METRIC = "link_gb_s"
Progress = Callable[[str], None]


def card_label(index: int) -> str:
    return f"card {index}"


def link_label(source: int, target: int) -> str:
    return f"card {source} -> card {target}"


@dataclass(frozen=True)
class CardSweep:
    """Best figure per card and metric: GB/s for copies, TFLOPS for the matmul."""

    figures: dict  # card index -> {metric: value}
    dtype: str
    copy_bytes: int
    matmul_size: int
    rounds: int

    def by_label(self) -> dict[str, dict[str, float]]:
        return {card_label(index): values for index, values in self.figures.items()}


@dataclass(frozen=True)
class LinkMatrix:
    """Best copy bandwidth (GB/s, bytes moved) for every ordered pair of cards."""

    cards: tuple[int, ...]
    gb_s: dict  # (source, target) -> GB/s
    nbytes: int
    rounds: int

    def by_label(self) -> dict[str, dict[str, float]]:
        return {link_label(*pair): {LINK_METRIC: value} for pair, value in self.gb_s.items()}

    def rows(self) -> list[list[Optional[float]]]:
        """The matrix, source cards down, target cards across; None on the diagonal."""
        return [[self.gb_s.get((source, target)) for target in self.cards]
                for source in self.cards]


def _best_rates(kernels: dict, rounds: int) -> dict:
    for kernel in kernels.values():
        kernel.warm_up()
    alternate({key: kernel.run_once for key, kernel in kernels.items()}, rounds)
    return {key: kernel.rate() for key, kernel in kernels.items()}


def sweep_cards(cards: Sequence[Any], dtype: str, rounds: int = ROUNDS,
                progress: Optional[Progress] = None) -> CardSweep:
    """Host->device, device->host and on-card copy bandwidth and matmul rate of every card,
    interleaved across cards round by round."""
    copy_bytes, matmul_size = box_sizes(cards[0], dtype)
    host = host_buffer(cards[0], copy_bytes)  # one pinned buffer, every card's turn with it
    kernels: dict = {}
    with torch.inference_mode():
        for card in cards:
            for direction in COPY_DIRECTIONS:
                kernels[(card.index, COPY_METRICS[direction])] = copy_bandwidth_kernel(
                    card, direction, copy_bytes, host)
            kernels[(card.index, MATMUL_METRIC)] = matmul_kernel(card, dtype, matmul_size)
        if progress is not None:
            progress(f"sweeping {len(cards)} card(s): {len(kernels)} figures x {rounds} "
                     f"rounds, interleaved")
        rates = _best_rates(kernels, rounds)
    del kernels, host
    for card in cards:
        card.empty_cache()
    figures: dict = {card.index: {} for card in cards}
    for (index, metric), rate in rates.items():
        figures[index][metric] = rate / (1e12 if metric == MATMUL_METRIC else 1e9)
    return CardSweep(figures, dtype, copy_bytes, matmul_size, rounds)


def link_bytes(card: Any) -> int:
    """256 MiB between cards with their own memory (well past any latency term); 64 MiB
    between host stand-ins (past the host's caches, which made 16 MiB copies vary by 40%)."""
    return 256 << 20 if card.platform.has_device_memory else 64 << 20


def sweep_links(cards: Sequence[Any], rounds: int = ROUNDS,
                progress: Optional[Progress] = None) -> LinkMatrix:
    """Copy bandwidth of every ordered pair of distinct cards, interleaved over the pairs,
    each copy timed from both cards synchronized to both synchronized again."""
    nbytes = link_bytes(cards[0])
    with torch.inference_mode():
        sources = {card.index: torch.ones(nbytes // 4, device=card.torch_device)
                   for card in cards}
        targets = {card.index: torch.zeros(nbytes // 4, device=card.torch_device)
                   for card in cards}  # written once: no first-touch faults in a round
        kernels = {
            (source.index, target.index): _link_kernel(source, target, sources[source.index],
                                                       targets[target.index])
            for source, target in permutations(cards, 2)
        }
        if progress is not None:
            progress(f"sweeping {len(kernels)} links x {rounds} rounds, interleaved")
        rates = _best_rates(kernels, rounds)
    del kernels, sources, targets
    for card in cards:
        card.empty_cache()
    return LinkMatrix(tuple(card.index for card in cards),
                      {pair: rate / 1e9 for pair, rate in rates.items()}, nbytes, rounds)


def _link_kernel(source: Any, target: Any, source_buffer: torch.Tensor,
                 target_buffer: torch.Tensor) -> TimedKernel:
    return TimedKernel(source, lambda: target_buffer.copy_(source_buffer),
                       source_buffer.numel() * source_buffer.element_size(),
                       timer=lambda: source.transfer_timer(target))
