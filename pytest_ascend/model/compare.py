"""Judging whether two greedy generations agree, the way vLLM's check_logprobs_close does.

Two numerically different but correct paths (a padded batch and a single request, two
kernels) may pick different tokens where the model was nearly undecided. Such a divergence
is acceptable only if, at the first differing step, the two candidate tokens were within a
small log-probability margin in *both* runs; after it the sequences are different texts and
are not compared further. The margin is the caller's: numerics.tolerance.tie_margin(dtype,
layers=...) gives the suite's one near-tie rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch


@dataclass(frozen=True)
class GreedyComparison:
    identical: bool
    steps_compared: int
    first_divergence: Optional[int]
    margin_a: Optional[float]  # in run A: logprob(A's token) - logprob(B's token)
    margin_b: Optional[float]  # in run B: logprob(B's token) - logprob(A's token)
    tolerance: float

    @property
    def close(self) -> bool:
        if self.identical:
            return True
        return self.margin_a <= self.tolerance and self.margin_b <= self.tolerance

    def describe(self) -> str:
        if self.identical:
            return f"identical over {self.steps_compared} tokens"
        verdict = "a near-tie, accepted" if self.close else "NOT a near-tie"
        return (
            f"diverged at token {self.first_divergence} of {self.steps_compared}: margins "
            f"{self.margin_a:.3g} / {self.margin_b:.3g} vs tolerance {self.tolerance:g} "
            f"({verdict})"
        )


def compare_greedy(
    tokens_a: list[int],
    logits_a: torch.Tensor,
    tokens_b: list[int],
    logits_b: torch.Tensor,
    tolerance: float,
) -> GreedyComparison:
    """Compare two greedy runs of the same prompt; logits are [steps, vocab]."""
    steps = min(len(tokens_a), len(tokens_b))
    for i in range(steps):
        a, b = tokens_a[i], tokens_b[i]
        if a != b:
            lp_a = torch.log_softmax(logits_a[i].double(), dim=-1)
            lp_b = torch.log_softmax(logits_b[i].double(), dim=-1)
            return GreedyComparison(
                identical=False,
                steps_compared=steps,
                first_divergence=i,
                margin_a=float(lp_a[a] - lp_a[b]),
                margin_b=float(lp_b[b] - lp_b[a]),
                tolerance=tolerance,
            )
    # Same tokens as far as the shorter goes: equal only if equally long (a length mismatch
    # has no logits to judge it by, so it is never a near-tie).
    identical = len(tokens_a) == len(tokens_b)
    margin = None if identical else float("inf")
    return GreedyComparison(identical, steps, None if identical else steps, margin, margin, tolerance)
