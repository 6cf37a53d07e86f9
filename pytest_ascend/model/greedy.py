"""Greedy generation with the per-step logits kept, through the model's own `generate`.

The compat checks compare generation paths (batch vs single, run vs rerun); they need the
tokens and, at a point of divergence, the logits that decided it.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import torch


@dataclass
class GreedyOutput:
    """One sequence's new tokens and the logits (float32, on the CPU) each was chosen from."""

    tokens: list[int]
    logits: torch.Tensor  # [steps, vocab]
    step_ms: list[float] = field(default_factory=list)  # decode steps, when timed


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


def greedy_continue(
    model: Any, cache: Any, last_logits: torch.Tensor, steps: int, device: Any = None
) -> GreedyOutput:
    """Greedy-decode `steps` tokens for one sequence from a KV cache that already holds its
    prompt, given the logits of the prompt's last position ([1, vocab] or [vocab]).

    Used where the cache came from somewhere other than `generate` (a prefix cache, a
    prefill handed over to a decode path), to check it decodes as `generate` would. With a
    `device` (DeviceUnderTest), each decode step (forward + argmax) is timed on it.
    """
    from pytest_ascend.model.hf_compat import forward_kwargs, output_cache

    timer = device.timer if device is not None else _untimed
    logits = last_logits.reshape(1, -1)
    token = logits.argmax(dim=-1, keepdim=True)
    out_tokens, kept, step_ms = [], [], []
    with torch.inference_mode():
        for step in range(steps):
            out_tokens.append(int(token))
            kept.append(logits[0].float().cpu())
            if step + 1 == steps:
                break
            with timer() as timing:
                out = model(input_ids=token, **forward_kwargs(model, cache))
                cache = output_cache(out)
                logits = out.logits[:, -1, :]
                token = logits.argmax(dim=-1, keepdim=True)
            step_ms.append(timing.elapsed_ms if timing is not None else math.nan)
    return GreedyOutput(out_tokens, torch.stack(kept), step_ms)


@contextmanager
def _untimed() -> Iterator[None]:
    yield None
