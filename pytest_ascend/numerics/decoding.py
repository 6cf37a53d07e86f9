"""Decoding a prompt along a fixed answer, the way a golden is recorded and compared.

Both sides go through one loop: a prefill of the prompt, then one decode step per token
through the KV cache (the decode kernels a server runs), with the log-probabilities of every
position kept. Recording lets the model choose (free greedy); comparing feeds the golden's
tokens (teacher forcing), so every position is compared in the context the golden had, and
where the run's own argmax first differs is exactly where its free greedy run would diverge.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

import torch

from pytest_ascend.model.greedy import greedy_continue
from pytest_ascend.model.hf_compat import forward_kwargs, output_cache


@dataclass(frozen=True)
class DecodedAnswer:
    """The model's argmax at each position and its log-probabilities there ([steps, vocab],
    float64 on the CPU)."""

    tokens: list[int]
    logprobs: torch.Tensor


def decode_answer(
    model: Any, prompt_ids: Sequence[int], steps: int, forced: Optional[Sequence[int]] = None
) -> DecodedAnswer:
    """Greedy-decode `steps` positions after `prompt_ids` (eos is an ordinary token, as in the
    suite's greedy definition), feeding `forced` tokens instead of the argmax when given."""
    ids = torch.tensor([list(prompt_ids)], device=model.device)
    with torch.inference_mode():
        out = model(input_ids=ids, attention_mask=torch.ones_like(ids),
                    **forward_kwargs(model, None))
    decoded = greedy_continue(model, output_cache(out), out.logits[:, -1, :], steps,
                              forced=forced)
    return DecodedAnswer(decoded.tokens, torch.log_softmax(decoded.logits.double(), dim=-1))
