"""Greedy generation with the per-step logits kept, and the suite's one definition of it.

"Greedy for exactly N tokens" means: the argmax over the whole vocabulary at every step, eos
included, and no stopping at eos, for N steps. Every path the suite compares decodes this
way (the timed loop in measure.generation, the prefill/decode hand-over and the prefix cache
through `greedy_continue`, speculative decoding with `stop_at_eos=False`, an SGLang server
asked for `ignore_eos`), and `greedy_generate(..., ignore_eos=True)` is the reference they
are held against, through transformers' own `generate`.

transformers' `min_new_tokens` is *not* this: it bans eos (logits set to -inf) until the
last step. A chat model such as Qwen2.5-14B-Instruct makes eos the argmax at the end of
nearly every answer, so a reference built on it disagrees with every raw-argmax path there.
"""

from __future__ import annotations

import math
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Iterator, Optional, Sequence

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
    """Greedy-decode `prompts` as one left-padded batch with the model's own `generate`.

    Without `ignore_eos` a sequence ends after its first eos, as `generate` ends it. With
    `ignore_eos`, the suite's definition above: exactly `max_new_tokens` argmax tokens per
    sequence, eos among them wherever it is the argmax.
    """
    from transformers import GenerationConfig

    inputs = tokenizer(list(prompts), return_tensors="pt", padding=True)
    inputs = {k: v.to(model.device) for k, v in inputs.items()}
    eos = model.generation_config.eos_token_id
    config = GenerationConfig(
        max_new_tokens=max_new_tokens,
        do_sample=False,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=None if ignore_eos else eos,
        output_logits=True,
        return_dict_in_generate=True,
    )
    with torch.inference_mode(), _no_eos(model) if ignore_eos else nullcontext():
        out = model.generate(**inputs, generation_config=config)
    prompt_len = inputs["input_ids"].shape[1]
    logits = torch.stack(out.logits, dim=1).float().cpu()  # [batch, steps, vocab]
    results = []
    for row in range(len(prompts)):
        tokens = out.sequences[row, prompt_len:].tolist()
        if not ignore_eos:
            tokens = until_eos(tokens, eos)
        results.append(GreedyOutput(tokens, logits[row, : len(tokens)]))
    return results


@contextmanager
def _no_eos(model: Any) -> Iterator[None]:
    """`generate` fills an unset eos_token_id from the model's own generation config; unset
    it there too for the call, so eos is an ordinary token: never banned, never a stop."""
    config = model.generation_config
    saved = config.eos_token_id
    config.eos_token_id = None
    try:
        yield
    finally:
        config.eos_token_id = saved


def eos_ids(eos: Any) -> set[int]:
    """The stop ids an `eos_token_id` names: none (None), one id, or several."""
    return set(eos if isinstance(eos, (list, tuple, set, frozenset)) else [eos]) - {None}


def until_eos(tokens: list[int], eos: Any) -> list[int]:
    """`tokens` up to and including the first stop id of `eos` (see `eos_ids`), as
    `generate` ends a sequence; all of them when none occurs."""
    stops = eos_ids(eos)
    for i, tok in enumerate(tokens):
        if tok in stops:
            return tokens[: i + 1]
    return tokens


def greedy_continue(
    model: Any, cache: Any, last_logits: torch.Tensor, steps: int, device: Any = None,
    forced: Optional[Sequence[int]] = None,
) -> GreedyOutput:
    """Greedy-decode `steps` tokens for one sequence from a KV cache that already holds its
    prompt, given the logits of the prompt's last position ([1, vocab] or [vocab]).

    Used where the cache came from somewhere other than `generate` (a prefix cache, a
    prefill handed over to a decode path), to check it decodes as `generate` would. With a
    `device` (DeviceUnderTest), each decode step (forward + argmax) is timed on it.

    With `forced` tokens, step i feeds `forced[i]` instead of the model's own choice
    (teacher forcing through the same decode path): the returned tokens are still the
    model's argmax at each step, each taken in the context `forced` gives, so a comparison
    with a recorded generation sees every position, not only those before a first
    divergence. Until the argmax first differs from `forced`, the run is the free one.
    """
    from pytest_ascend.model.hf_compat import forward_kwargs, output_cache

    timer = device.timer if device is not None else _untimed
    logits = last_logits.reshape(1, -1)
    token = logits.argmax(dim=-1, keepdim=True)
    feed_forced = None if forced is None else torch.tensor([list(forced)], device=token.device)
    out_tokens, kept, step_ms = [], [], []
    with torch.inference_mode():
        for step in range(steps):
            out_tokens.append(int(token))
            kept.append(logits[0].float().cpu())
            if step + 1 == steps:
                break
            feed = token if feed_forced is None else feed_forced[:, step:step + 1]
            with timer() as timing:
                out = model(input_ids=feed, **forward_kwargs(model, cache))
                cache = output_cache(out)
                logits = out.logits[:, -1, :]
                token = logits.argmax(dim=-1, keepdim=True)
            step_ms.append(timing.elapsed_ms if timing is not None else math.nan)
    return GreedyOutput(out_tokens, torch.stack(kept), step_ms)


@contextmanager
def _untimed() -> Iterator[None]:
    yield None
