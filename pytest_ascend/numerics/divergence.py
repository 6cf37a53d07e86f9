"""How far a run's log-probabilities are from a golden's, position by position.

The golden keeps its top-k tokens (k = 20) at every position and its full vocabulary only at
a few. So the KL divergence is taken over the golden's top-k plus one "other" bin holding the
rest of the mass: a coarse-graining of the full distributions, which by the data-processing
inequality never exceeds their full KL, and which at the top-k, where greedy decoding and
sampling live, loses almost nothing. The largest |Δ logprob| is taken over the tokens in both
top-ks. Agreement is the share of positions where the run's argmax is the golden's token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch

from pytest_ascend.numerics.tolerance import dlogprob_bound

_TINY = 1e-300  # floor under a probability before its log: 0 * log 0 counts as 0


def topk_kl(golden_ids: torch.Tensor, golden_logprobs: torch.Tensor,
            run_logprobs: torch.Tensor) -> torch.Tensor:
    """KL(golden || run) per position over the golden's top-k and an "other" bin.

    `golden_ids` / `golden_logprobs` are [positions, k]; `run_logprobs` [positions, vocab].
    """
    golden = golden_logprobs.double()
    run_top = run_logprobs.double().gather(1, golden_ids)
    p, q = golden.exp(), run_top.exp()
    p_other = (1 - p.sum(dim=1)).clamp(min=0)
    q_other = (1 - q.sum(dim=1)).clamp(min=0)
    top = (p * (golden - run_top)).sum(dim=1)
    other = p_other * (p_other.clamp(min=_TINY).log() - q_other.clamp(min=_TINY).log())
    return (top + other).clamp(min=0)


def full_kl(golden_logprobs: torch.Tensor, run_logprobs: torch.Tensor) -> torch.Tensor:
    """KL(golden || run) per position over the whole vocabulary ([positions, vocab] each)."""
    golden = golden_logprobs.double()
    return (golden.exp() * (golden - run_logprobs.double())).sum(dim=1).clamp(min=0)


def shared_topk_delta(golden_ids: torch.Tensor, golden_logprobs: torch.Tensor,
                      run_logprobs: torch.Tensor) -> torch.Tensor:
    """max |Δ logprob| per position over the tokens in both the golden's and the run's top-k
    (0 where they share none: the KL and the tokens then speak for that position)."""
    k = golden_ids.shape[1]
    run_top_ids = run_logprobs.topk(k, dim=1).indices
    shared = (golden_ids.unsqueeze(2) == run_top_ids.unsqueeze(1)).any(dim=2)
    delta = (golden_logprobs.double() - run_logprobs.double().gather(1, golden_ids)).abs()
    return torch.where(shared, delta, torch.zeros_like(delta)).amax(dim=1)


@dataclass(frozen=True)
class Bounds:
    """What a correct run may differ from its golden by, at worst, at any one position."""

    dlogprob: float  # max |Δ logprob| over the shared top-k
    kl: float  # KL over the golden's top-k + other
    tie_margin: float  # where two tokens count as tied (the near-tie rule)
    perplexity: float  # relative difference of perplexity on the shipped text

    def describe(self) -> str:
        return (f"|Δ logprob| <= {self.dlogprob:g}, KL <= {self.kl:g}, near-tie margin "
                f"{self.tie_margin:g}, perplexity within {self.perplexity:.2%}")


PERPLEXITY_PER_DLOGPROB = 0.05  # relative perplexity change allowed per unit of that bound


def bounds_for(run_dtype: str, golden_dtype: str, layers: int, slack: float = 1.0) -> Bounds:
    """The bounds for a run in `run_dtype` against a golden recorded in `golden_dtype`, for a
    model of `layers` decoder layers (numerics.tolerance: the looser dtype decides, the
    bound grows with depth); `slack` widens every bound by that factor
    (--ascend-golden-slack). The KL bound follows from the dlogprob bound: for small
    perturbations δ of the log-probabilities, KL ~ Var_p(δ) / 2 <= max|δ|^2 / 2."""
    margin = dlogprob_bound(run_dtype, golden_dtype, layers=layers, slack=slack)
    return Bounds(dlogprob=margin, kl=margin * margin / 2, tie_margin=margin,
                  perplexity=margin * PERPLEXITY_PER_DLOGPROB)


@dataclass(frozen=True)
class Divergence:
    """Where a run's greedy choice first differs from the golden's, and whether the golden
    was undecided there."""

    position: int
    golden_token: int
    run_token: int
    golden_margin: float  # golden: logprob(its token) - logprob(the run's token)
    run_margin: float  # run: logprob(its token) - logprob(the golden's token)
    near_tie: bool


@dataclass(frozen=True)
class PromptDivergence:
    """One prompt of the golden against the run."""

    name: str
    positions: int
    agreeing: int
    kl: torch.Tensor  # [positions]
    dlogprob: torch.Tensor  # [positions]
    first_divergence: Optional[Divergence]
    unexplained: tuple[Divergence, ...]  # argmax differences that are not near-ties
    full_kl: dict  # position -> KL over the whole vocabulary, where the golden kept it

    def problems(self, bounds: Bounds, decode: Callable[[int], str]) -> list[str]:
        """Each way this prompt falls outside `bounds`, in one line that says where."""
        found = []
        if self.unexplained:
            d = self.unexplained[0]
            found.append(
                f"{self.name}: greedy token differs at position {d.position} of "
                f"{self.positions}: golden {decode(d.golden_token)!r} (id {d.golden_token}), "
                f"run {decode(d.run_token)!r} (id {d.run_token}); golden margin "
                f"{d.golden_margin:.3g}, run margin {d.run_margin:.3g}, not a near-tie "
                f"(<= {bounds.tie_margin:g}); {len(self.unexplained)} such position(s)"
                + self._first_text(decode))
        for label, series, bound in (("KL", self.kl, bounds.kl),
                                     ("max |Δ logprob|", self.dlogprob, bounds.dlogprob)):
            worst = int(series.argmax())
            if float(series[worst]) > bound:
                over = int((series > bound).sum())
                found.append(
                    f"{self.name}: {label} {float(series[worst]):.3g} at position {worst} > "
                    f"bound {bound:g} ({over} of {self.positions} positions over it; first at "
                    f"{int((series > bound).nonzero()[0])})")
        return found

    def _first_text(self, decode: Callable[[int], str]) -> str:
        first = self.first_divergence
        if first is None or first.position == self.unexplained[0].position:
            return ""
        return (f"; first divergence at position {first.position} (a near-tie: "
                f"{decode(first.golden_token)!r} vs {decode(first.run_token)!r})")


def compare_prompt(
    name: str,
    golden_tokens: list[int],
    golden_ids: torch.Tensor,
    golden_logprobs: torch.Tensor,
    golden_full: dict,
    run_tokens: list[int],
    run_logprobs: torch.Tensor,
    tie_margin: float,
) -> PromptDivergence:
    """One prompt's divergence: the run decoded along `golden_tokens` (teacher forcing), its
    argmax `run_tokens` and log-probabilities [positions, vocab]; `golden_full` maps a
    position to the golden's full-vocabulary log-probabilities there."""
    positions = len(golden_tokens)
    divergences = [_divergence(i, golden_tokens[i], run_tokens[i], golden_ids[i],
                               golden_logprobs[i], run_logprobs[i], tie_margin)
                   for i in range(positions) if run_tokens[i] != golden_tokens[i]]
    full = {pos: float(full_kl(lp.unsqueeze(0), run_logprobs[pos].unsqueeze(0))[0])
            for pos, lp in golden_full.items()}
    return PromptDivergence(
        name=name,
        positions=positions,
        agreeing=positions - len(divergences),
        kl=topk_kl(golden_ids, golden_logprobs, run_logprobs),
        dlogprob=shared_topk_delta(golden_ids, golden_logprobs, run_logprobs),
        first_divergence=divergences[0] if divergences else None,
        unexplained=tuple(d for d in divergences if not d.near_tie),
        full_kl=full,
    )


def _divergence(position: int, golden_token: int, run_token: int, golden_ids: torch.Tensor,
                golden_logprobs: torch.Tensor, run_logprobs: torch.Tensor,
                tie_margin: float) -> Divergence:
    in_golden = (golden_ids == run_token).nonzero()
    # A run token outside the golden's top-k is at least as far below as its k-th token.
    run_token_in_golden = (float(golden_logprobs[int(in_golden[0])]) if len(in_golden)
                           else float(golden_logprobs[-1]))
    golden_margin = float(golden_logprobs[0]) - run_token_in_golden
    run_margin = float(run_logprobs[run_token] - run_logprobs[golden_token])
    near = len(in_golden) > 0 and golden_margin <= tie_margin and run_margin <= tie_margin
    return Divergence(position, golden_token, run_token, golden_margin, run_margin, near)
