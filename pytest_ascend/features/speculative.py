"""Speculative decoding with a separate draft model: draft k tokens, verify them in one target
forward, keep the longest agreeing prefix plus the target's own next token.

The seed accepted draft tokens above a probability threshold and resampled, which changes
the answer. Here acceptance follows the target exactly: under greedy decoding a draft token
is kept only if it is the target's argmax, so the output is the target's greedy output; under
sampling, the rejection rule of Leviathan et al. (2023) and Chen et al. (2023) (accept with
probability min(1, p/q), else sample from max(0, p - q) renormalised) makes every output
token distributed exactly as the target's. Both models keep their own KV cache, cropped back
to the accepted tokens after each verification.

transformers' assisted generation (`assistant_model=`) and prompt-lookup decoding are
wrapped here too, as baselines for the same prompts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional, Sequence, Union

import torch

from pytest_ascend.model.greedy import eos_ids, until_eos
from pytest_ascend.model.hf_compat import crop_cache, forward_kwargs, output_cache


@dataclass
class SpeculativeResult:
    """The new tokens and the accounting of how they were produced."""

    tokens: list[int]
    proposed: int  # draft tokens put to the target
    accepted: int  # of those, kept
    target_forwards: int  # the prefill included
    draft_forwards: int
    verify_steps: int

    @property
    def acceptance_rate(self) -> float:
        return self.accepted / self.proposed if self.proposed else math.nan

    @property
    def mean_accepted_length(self) -> float:
        """Draft tokens kept per verification."""
        return self.accepted / self.verify_steps if self.verify_steps else math.nan

    @property
    def target_forwards_per_token(self) -> float:
        return self.target_forwards / len(self.tokens) if self.tokens else math.nan


class _Decoder:
    """One model with its own KV cache, fed only what its cache does not hold yet."""

    def __init__(self, model: Any, prompt: torch.Tensor) -> None:
        self.model = model
        self.cache: Any = None
        self.length = 0  # positions in the cache
        self.forwards = 0
        self._prompt = prompt

    def forward(self, ids: list[int], keep: int) -> torch.Tensor:
        """Logits of the last `keep` positions after feeding `ids`, [keep, vocab]."""
        kwargs = forward_kwargs(self.model, self.cache, keep_last=keep)
        if self.cache is None:
            feed = torch.cat([self._prompt, _ids(ids, self._prompt.device)], dim=1)
        else:
            feed = _ids(ids, self._prompt.device)
        out = self.model(input_ids=feed, **kwargs)
        self.cache = output_cache(out)
        self.length += feed.shape[1]
        self.forwards += 1
        return out.logits[0, -keep:, :]

    def rollback(self, length: int) -> None:
        if length < self.length:
            crop_cache(self.cache, length)
            self.length = length


def speculative_generate(
    target: Any,
    draft: Any,
    input_ids: Union[Sequence[int], torch.Tensor],
    *,
    max_new_tokens: int,
    num_draft_tokens: int = 4,
    temperature: float = 0.0,
    seed: Optional[int] = None,
    stop_at_eos: bool = True,
) -> SpeculativeResult:
    """Decode `max_new_tokens` from `target`, drafting `num_draft_tokens` per step with `draft`.

    temperature 0 is greedy (the result is exactly target greedy decoding); above 0 both
    models sample at that temperature with a generator seeded by `seed`. With `stop_at_eos`
    decoding ends after the target's eos token, as `generate` does. `num_draft_tokens=0`
    decodes with the target alone through the same loop: the plain baseline.
    """
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    if num_draft_tokens < 0:
        raise ValueError(f"num_draft_tokens must be >= 0, got {num_draft_tokens}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    prompt = _prompt_tensor(input_ids, target.device)
    sampler = _Sampler(temperature, seed)
    eos = _eos_ids(target) if stop_at_eos else set()
    big, small = _Decoder(target, prompt), _Decoder(draft, prompt.to(draft.device))
    prompt_len = prompt.shape[1]
    proposed = accepted = verify_steps = 0

    with torch.inference_mode():
        tokens = [sampler.pick(big.forward([], keep=1)[-1])]
        while len(tokens) < max_new_tokens and tokens[-1] not in eos:
            k = min(num_draft_tokens, max_new_tokens - len(tokens) - 1)
            if k == 0:
                tokens.append(sampler.pick(big.forward([tokens[-1]], keep=1)[-1]))
                continue
            context = prompt_len + len(tokens)  # positions once tokens[-1] is fed
            drafted, draft_probs = [], []
            pending = tokens[small.length - prompt_len:] if small.cache is not None else tokens
            for _ in range(k):
                logits = small.forward(pending, keep=1)[-1]
                token, probs = sampler.draft(logits)
                drafted.append(token)
                draft_probs.append(probs)
                pending = [token]
            target_logits = big.forward([tokens[-1]] + drafted, keep=k + 1)
            kept, following = sampler.verify(target_logits, drafted, draft_probs)
            tokens += kept + [following]
            proposed, accepted, verify_steps = proposed + k, accepted + len(kept), verify_steps + 1
            big.rollback(context + len(kept))
            small.rollback(min(small.length, context + len(kept)))

    return SpeculativeResult(
        tokens=until_eos(tokens[:max_new_tokens], eos),
        proposed=proposed,
        accepted=accepted,
        target_forwards=big.forwards,
        draft_forwards=small.forwards,
        verify_steps=verify_steps,
    )


class _Sampler:
    """Greedy (temperature 0) or seeded sampling, for drafting, verifying and plain steps.

    Sampling works on float32 probabilities on the CPU with a CPU generator, so a seed gives
    the same tokens on every device.
    """

    def __init__(self, temperature: float, seed: Optional[int]) -> None:
        self.temperature = temperature
        self.generator = torch.Generator()
        if seed is None:
            self.generator.seed()
        else:
            self.generator.manual_seed(seed)

    def probs(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.softmax(logits.float().cpu() / self.temperature, dim=-1)

    def pick(self, logits: torch.Tensor) -> int:
        if self.temperature == 0:
            return int(logits.argmax())
        return int(torch.multinomial(self.probs(logits), 1, generator=self.generator))

    def draft(self, logits: torch.Tensor) -> tuple[int, Optional[torch.Tensor]]:
        if self.temperature == 0:
            return int(logits.argmax()), None
        probs = self.probs(logits)
        return int(torch.multinomial(probs, 1, generator=self.generator)), probs

    def verify(
        self, target_logits: torch.Tensor, drafted: list[int], draft_probs: list[Any]
    ) -> tuple[list[int], int]:
        """The draft tokens kept and the token that follows them (the target's own)."""
        if self.temperature == 0:
            return greedy_verify(target_logits, drafted)
        return rejection_sample(self.probs(target_logits), torch.stack(draft_probs), drafted,
                                self.generator)


def greedy_verify(target_logits: torch.Tensor, drafted: list[int]) -> tuple[list[int], int]:
    """Keep draft tokens while each is the target's argmax; then the target's argmax.

    `target_logits[i]` are the target's logits after the context plus drafted[:i].
    """
    choices = target_logits.argmax(dim=-1).tolist()
    kept = 0
    while kept < len(drafted) and drafted[kept] == choices[kept]:
        kept += 1
    return drafted[:kept], int(choices[kept])


def rejection_sample(
    target_probs: torch.Tensor,
    draft_probs: torch.Tensor,
    drafted: list[int],
    generator: torch.Generator,
) -> tuple[list[int], int]:
    """Speculative sampling's acceptance rule (Leviathan et al. 2023, Chen et al. 2023).

    `target_probs` is [k+1, vocab] (p after each drafted prefix), `draft_probs` [k, vocab]
    (the q each draft token was sampled from). Draft token i is kept with probability
    min(1, p_i(x) / q_i(x)); the first rejection is replaced by a sample from
    max(0, p_i - q_i) renormalised; if all are kept, one more token comes from p_k. Every
    emitted token is then distributed exactly as p.
    """
    for i, token in enumerate(drafted):
        p, q = target_probs[i, token], draft_probs[i, token]
        if torch.rand((), generator=generator) < torch.clamp(p / q, max=1.0):
            continue
        residual = torch.clamp(target_probs[i] - draft_probs[i], min=0)
        total = residual.sum()
        # p == q makes the residual empty; rejection then has probability 0, so reaching
        # here means rounding: fall back to p itself.
        weights = residual / total if total > 0 else target_probs[i]
        return drafted[:i], int(torch.multinomial(weights, 1, generator=generator))
    return list(drafted), int(torch.multinomial(target_probs[len(drafted)], 1,
                                                generator=generator))


def assisted_generate(target: Any, draft: Any, input_ids: Any, *, max_new_tokens: int,
                      num_draft_tokens: int) -> list[int]:
    """transformers' own assisted generation (greedy), drafting a constant `num_draft_tokens`.

    Its defaults adapt the draft length and stop drafting below a confidence threshold; both
    are switched off so it drafts exactly as `speculative_generate` does.
    """
    config = draft.generation_config
    saved = {name: getattr(config, name, None) for name in
             ("num_assistant_tokens", "num_assistant_tokens_schedule",
              "assistant_confidence_threshold")}
    config.num_assistant_tokens = num_draft_tokens
    config.num_assistant_tokens_schedule = "constant"
    config.assistant_confidence_threshold = 0.0
    try:
        return _generate(target, input_ids, max_new_tokens, assistant_model=draft)
    finally:
        for name, value in saved.items():
            setattr(config, name, value)


def prompt_lookup_generate(target: Any, input_ids: Any, *, max_new_tokens: int,
                           num_draft_tokens: int) -> list[int]:
    """Prompt-lookup (n-gram) decoding: drafts are copied from earlier text, no draft model."""
    return _generate(target, input_ids, max_new_tokens, prompt_lookup_num_tokens=num_draft_tokens)


def _generate(target: Any, input_ids: Any, max_new_tokens: int, **extra: Any) -> list[int]:
    prompt = _prompt_tensor(input_ids, target.device)
    with torch.inference_mode():
        out = target.generate(
            input_ids=prompt, attention_mask=torch.ones_like(prompt), do_sample=False,
            max_new_tokens=max_new_tokens, pad_token_id=_pad_id(target), **extra,
        )
    return out[0, prompt.shape[1]:].tolist()


def _prompt_tensor(input_ids: Union[Sequence[int], torch.Tensor], device: Any) -> torch.Tensor:
    ids = input_ids if isinstance(input_ids, torch.Tensor) else torch.tensor(list(input_ids))
    if ids.dim() == 1:
        ids = ids.unsqueeze(0)
    if ids.shape[0] != 1 or ids.shape[1] == 0:
        raise ValueError(f"speculative decoding takes one non-empty prompt, got shape "
                         f"{tuple(ids.shape)}")
    return ids.to(device)


def _ids(ids: list[int], device: Any) -> torch.Tensor:
    return torch.tensor([ids], dtype=torch.long, device=device)


def _eos_ids(model: Any) -> set[int]:
    return eos_ids(model.generation_config.eos_token_id)


def _pad_id(model: Any) -> Optional[int]:
    pad = model.generation_config.pad_token_id
    return pad if pad is not None else next(iter(_eos_ids(model)), None)
