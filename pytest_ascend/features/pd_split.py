"""Prefill and decode as separate phases joined by a KV hand-over: the disaggregated serving
shape (SGLang's prefill/decode disaggregation) reduced to its essence on one model.

The prefill phase computes the prompt's KV and the first token's logits; the hand-over copies
them into tensors the decode phase owns (on `decode_device`); the decode phase builds its own
cache object from them and decodes. If the hand-over lost or reordered anything, the decoded
tokens would differ from uninterrupted generation, which is what the feature test checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch

from pytest_ascend.model.greedy import GreedyOutput, greedy_continue
from pytest_ascend.model.hf_compat import (
    cache_from_tensors,
    cache_tensors,
    forward_kwargs,
    output_cache,
)


@dataclass
class PrefillHandoff:
    """What the prefill phase passes to the decode phase, with what each part cost."""

    kv: list[tuple[torch.Tensor, torch.Tensor]]  # copies, on the decode device
    last_logits: torch.Tensor  # [1, vocab], on the decode device
    prompt_tokens: int
    prefill_ms: float
    handoff_ms: float
    handoff_bytes: int


def prefill_phase(
    model: Any, input_ids: torch.Tensor, device: Any, decode_device: Optional[Any] = None
) -> PrefillHandoff:
    """Prefill `input_ids` ([1, L]) and hand its KV over, each step timed on `device`."""
    target = decode_device if decode_device is not None else model.device
    with torch.inference_mode():
        with device.timer() as prefill:
            out = model(input_ids=input_ids.to(model.device), **forward_kwargs(model))
        with device.timer() as handoff:
            kv = [(k.to(target, copy=True), v.to(target, copy=True))
                  for k, v in cache_tensors(output_cache(out))]
            logits = out.logits[:, -1, :].to(target, copy=True)
    return PrefillHandoff(
        kv=kv, last_logits=logits, prompt_tokens=int(input_ids.shape[1]),
        prefill_ms=prefill.elapsed_ms, handoff_ms=handoff.elapsed_ms,
        handoff_bytes=sum(k.nbytes + v.nbytes for k, v in kv),
    )


def decode_phase(model: Any, handoff: PrefillHandoff, max_new_tokens: int,
                 device: Any) -> GreedyOutput:
    """Greedy-decode from the handed-over KV in a cache object of the decode phase's own;
    each step is timed on `device`. The hand-over stays intact (a dynamic cache appends by
    concatenation), so one hand-over can be decoded repeatedly."""
    cache = cache_from_tensors(handoff.kv, model.config)
    return greedy_continue(model, cache, handoff.last_logits, max_new_tokens, device=device)
