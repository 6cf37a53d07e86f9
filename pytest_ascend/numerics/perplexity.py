"""Perplexity of the model on a text the project ships, with a sliding window.

A numerics bug that moves every log-probability a little (a softmax kernel with a wrong
scale, a matmul that drops precision) may flip no greedy token on a few prompts, yet it moves
perplexity over a few thousand tokens of Chinese, English and code. The text
(data/eval_text.txt) was written for this and kept apart from the corpus the built-in
model's tokenizer was trained on.

The window slides by `stride` tokens; each token is scored once, with at least
`window - stride` tokens of context (all it has near the start), as transformers' own
perplexity guide does it, in the session dtype.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from pytest_ascend.model.hf_compat import forward_kwargs

WINDOW, STRIDE = 1024, 512


def eval_text() -> str:
    return (Path(__file__).parents[1] / "data" / "eval_text.txt").read_text("utf-8")


@dataclass(frozen=True)
class Perplexity:
    perplexity: float
    mean_nll: float  # nats per scored token
    tokens: int  # tokens scored
    window: int
    stride: int
    text_sha256: str

    def metrics(self) -> dict:
        return {"perplexity": self.perplexity, "perplexity_nll": self.mean_nll,
                "perplexity_tokens": self.tokens, "perplexity_window": self.window,
                "perplexity_stride": self.stride, "perplexity_text_sha256": self.text_sha256}


def text_perplexity(model: Any, tokenizer: Any, text: str | None = None, *,
                    window: int = WINDOW, stride: int = STRIDE) -> Perplexity:
    """Perplexity of `model` on `text` (default: the shipped evaluation text)."""
    text = eval_text() if text is None else text
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    limit = getattr(model.config, "max_position_embeddings", window) or window
    window = min(window, limit)
    stride = min(stride, window // 2)
    nll, scored = sliding_nll(model, ids, window=window, stride=stride)
    mean = nll / scored
    return Perplexity(math.exp(mean), mean, scored, window, stride,
                      hashlib.sha256(text.encode("utf-8")).hexdigest())


def sliding_nll(model: Any, ids: Sequence[int], *, window: int, stride: int
                ) -> tuple[float, int]:
    """Summed negative log-likelihood of ids[1:] and how many tokens it covers."""
    if len(ids) < 2:
        raise ValueError("the text is shorter than two tokens: nothing to score")
    if not 0 < stride < window:  # each scored token needs a token of context in its window
        raise ValueError(f"stride {stride} must be in (0, window {window})")
    total, scored, done = 0.0, 0, 1  # token 0 has no context: scoring starts at 1
    begin = 0
    while done < len(ids):
        end = min(begin + window, len(ids))
        new = end - done  # tokens of this window not scored yet: the last `new`
        chunk = torch.tensor([list(ids[begin:end])], device=model.device)
        kwargs = {**forward_kwargs(model, None, keep_last=new + 1), "use_cache": False}
        with torch.inference_mode():
            logits = model(input_ids=chunk, **kwargs).logits[0, -(new + 1):-1]
            logprobs = torch.log_softmax(logits.float(), dim=-1)
            targets = chunk[0, -new:].unsqueeze(1)
            total -= float(logprobs.gather(1, targets).double().sum())
        scored += new
        done = end
        begin += stride
    return total, scored
