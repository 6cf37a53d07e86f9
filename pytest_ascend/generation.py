"""Greedy generation with the per-step logits kept, through the model's own `generate`.

The compat checks compare generation paths (batch vs single, run vs rerun); they need the
tokens and, at a point of divergence, the logits that decided it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch


@dataclass
class GreedyOutput:
    """One sequence's new tokens and the logits (float32, on the CPU) each was chosen from."""

    tokens: list[int]
    logits: torch.Tensor  # [steps, vocab]


def greedy_generate(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    max_new_tokens: int,
    *,
    ignore_eos: bool = False,
) -> list[GreedyOutput]:
    """Greedy-decode `prompts` as one left-padded batch.

    With `ignore_eos`, every sequence produces exactly `max_new_tokens` tokens, so runs that
    are compared step by step do the same work.
    """
    from transformers import GenerationConfig

    inputs = tokenizer(list(prompts), return_tensors="pt", padding=True)
    inputs = {k: v.to(model.device) for k, v in inputs.items()}
    config = GenerationConfig(
        max_new_tokens=max_new_tokens,
        min_new_tokens=max_new_tokens if ignore_eos else 0,
        do_sample=False,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=model.generation_config.eos_token_id,
        output_logits=True,
        return_dict_in_generate=True,
    )
    with torch.inference_mode():
        out = model.generate(**inputs, generation_config=config)
    prompt_len = inputs["input_ids"].shape[1]
    logits = torch.stack(out.logits, dim=1).float().cpu()  # [batch, steps, vocab]
    results = []
    for row in range(len(prompts)):
        tokens = out.sequences[row, prompt_len:].tolist()
        if not ignore_eos:
            tokens = _until_eos(tokens, config.eos_token_id)
        results.append(GreedyOutput(tokens, logits[row, : len(tokens)]))
    return results


def _until_eos(tokens: list[int], eos: Any) -> list[int]:
    stops = set(eos if isinstance(eos, (list, tuple)) else [eos]) - {None}
    for i, tok in enumerate(tokens):
        if tok in stops:
            return tokens[: i + 1]
    return tokens
