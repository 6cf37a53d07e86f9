"""A run of the model under test against a golden: every prompt decoded along the golden's
answer, each position's divergence measured, the whole judged by dtype-derived bounds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

from pytest_ascend.numerics.decoding import decode_answer
from pytest_ascend.numerics.divergence import Bounds, PromptDivergence, compare_prompt
from pytest_ascend.numerics.golden import Golden


@dataclass(frozen=True)
class GoldenReport:
    golden: Golden
    bounds: Bounds
    prompts: tuple[PromptDivergence, ...]

    def metrics(self) -> dict:
        """The figures the benchmark and the history keep (docs/metrics.md defines them)."""
        kl = torch.cat([p.kl for p in self.prompts])
        dlogprob = torch.cat([p.dlogprob for p in self.prompts])
        positions = sum(p.positions for p in self.prompts)
        full = [v for p in self.prompts for v in p.full_kl.values()]
        return {
            "golden_kl_mean": float(kl.mean()),
            "golden_kl_max": float(kl.max()),
            "golden_dlogprob_max": float(dlogprob.max()),
            "golden_full_kl_max": max(full) if full else None,
            "token_agreement": sum(p.agreeing for p in self.prompts) / positions,
            "golden_positions": positions,
            "golden_dtype": self.golden.dtype,
            "golden_dlogprob_bound": self.bounds.dlogprob,
            "golden_kl_bound": self.bounds.kl,
        }

    def problems(self, decode: Callable[[int], str]) -> list[str]:
        return [line for p in self.prompts for line in p.problems(self.bounds, decode)]

    def lines(self) -> list[str]:
        """One line per prompt, for the terminal."""
        out = []
        for p in self.prompts:
            first = p.first_divergence
            where = "no divergence" if first is None else (
                f"first divergence at {first.position}"
                f"{' (near-tie)' if first.near_tie else ''}")
            out.append(f"{p.name}: {p.agreeing}/{p.positions} tokens agree, {where}; KL max "
                       f"{float(p.kl.max()):.3g}, max |Δ logprob| {float(p.dlogprob.max()):.3g}")
        return out


def compare_with_golden(model: Any, golden: Golden, bounds: Bounds,
                        progress: Callable[[str], None] = lambda _: None) -> GoldenReport:
    """Decode each golden prompt along the golden's answer on `model` and measure."""
    compared = []
    for prompt in golden.prompts:
        progress(f"comparing {prompt.name} ({len(prompt.tokens)} positions)")
        run = decode_answer(model, prompt.prompt_ids, len(prompt.tokens), forced=prompt.tokens)
        compared.append(compare_prompt(
            prompt.name, prompt.tokens, prompt.top_ids, prompt.top_logprobs,
            prompt.full_logprobs, run.tokens, run.logprobs, bounds.tie_margin))
    return GoldenReport(golden, bounds, tuple(compared))
