"""What the load generator sends: the seed workloads, random token sequences of chosen lengths,
and prefix-heavy traffic (multi-turn chats, one long system prompt shared by every request).

Every prompt is token ids, so input lengths are exact and a prefix can be made unique with
one leading token (the cache-cold twin of a prefix-heavy workload).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from pytest_ascend.model.prompts import (
    SEED_PROMPTS,
    SEED_WORKLOADS,
    conversation_prompt,
    long_prompt_ids,
)
from pytest_ascend.serving.load import LoadRequest


@dataclass(frozen=True)
class Lengths:
    """Input and output lengths in tokens. With `range_ratio` r < 1 each length is drawn
    uniformly from [r x length, length], as bench_serving's `--random-range-ratio` does."""

    input_len: int
    output_len: int
    range_ratio: float = 1.0

    @classmethod
    def parse(cls, text: str) -> "Lengths":
        """`INPUT:OUTPUT` or `INPUT:OUTPUT:RANGE_RATIO`, e.g. 256:64 or 256:64:0.5."""
        parts = text.split(":")
        try:
            if len(parts) not in (2, 3):
                raise ValueError
            lengths = cls(int(parts[0]), int(parts[1]),
                          float(parts[2]) if len(parts) == 3 else 1.0)
        except ValueError:
            raise ValueError("not INPUT:OUTPUT[:RANGE_RATIO] (e.g. 256:64 or 256:64:0.5)") \
                from None
        if lengths.input_len < 1 or lengths.output_len < 1 or not 0 < lengths.range_ratio <= 1:
            raise ValueError("lengths must be at least 1 and the range ratio in (0, 1]")
        return lengths

    def text(self) -> str:
        ratio = "" if self.range_ratio == 1 else f":{self.range_ratio:g}"
        return f"{self.input_len}:{self.output_len}{ratio}"


def ordinary_tokens(tokenizer: Any) -> list:
    """Every token id but the special ones, which would end or restructure a prompt."""
    special = set(tokenizer.all_special_ids)
    return [i for i in range(len(tokenizer)) if i not in special]


def random_requests(count: int, lengths: Lengths, tokenizer: Any, seed: int = 0) -> list:
    """`count` prompts of random ordinary tokens (no special token, which would end or
    restructure a prompt), each with its own drawn lengths."""
    draw = random.Random(seed)
    ordinary = ordinary_tokens(tokenizer)

    def length(full: int) -> int:
        return draw.randint(max(1, int(full * lengths.range_ratio)), full)

    return [LoadRequest([draw.choice(ordinary) for _ in range(length(lengths.input_len))],
                        length(lengths.output_len), "random")
            for _ in range(count)]


def seed_requests(count: int, tokenizer: Any) -> list:
    """The seed workloads' chat prompts with their answer lengths, in turn."""
    pool = [LoadRequest(tokenizer(prompt)["input_ids"], workload.max_new_tokens, workload.name)
            for workload in SEED_WORKLOADS for prompt in workload.chat_prompts(tokenizer)]
    return [pool[i % len(pool)] for i in range(count)]


# Assistant turns of the multi-turn chats: fixed, so that every turn's prompt is exactly the
# previous turn's prompt, its answer and the next question (what a chat client resends).
_REPLIES = ("好的，我来简单说明一下。", "Here is a short answer to that.",
            "这个问题可以分成三个部分来看。", "Sure; the main idea is simple.")


def multi_turn_requests(conversations: int, turns: int, output_len: int,
                        tokenizer: Any) -> list:
    """Chats that grow turn by turn: turn k of every conversation, then turn k+1, so each
    request's prompt extends one sent earlier."""
    questions = list(SEED_PROMPTS.values())
    requests = []
    for turn in range(turns):
        for chat in range(conversations):
            messages = []
            for k in range(turn + 1):
                messages.append({"role": "user",
                                 "content": questions[(chat + k) % len(questions)]})
                if k < turn:
                    messages.append({"role": "assistant",
                                     "content": _REPLIES[(chat + k) % len(_REPLIES)]})
            prompt = conversation_prompt(tokenizer, messages)
            requests.append(LoadRequest(tokenizer(prompt)["input_ids"], output_len,
                                        f"chat{chat}-turn{turn}"))
    return requests


def shared_system_prompt_requests(count: int, system_tokens: int, output_len: int,
                                  tokenizer: Any) -> list:
    """One long system prompt (natural text) before every request's own question."""
    system = tokenizer.decode(long_prompt_ids(tokenizer, system_tokens))
    questions = list(SEED_PROMPTS.values())
    return [LoadRequest(tokenizer(conversation_prompt(tokenizer, [
        {"role": "system", "content": system},
        {"role": "user", "content": f"{questions[i % len(questions)]} ({i})"}]))["input_ids"],
        output_len, "shared-system") for i in range(count)]


def cache_cold(requests: list, tokenizer: Any, seed: int = 1) -> list:
    """The same requests, each behind one token of its own, so no two share a prefix: the
    same work with nothing for a prefix cache to reuse."""
    salts = random.Random(seed).sample(ordinary_tokens(tokenizer), len(requests))
    return [LoadRequest([salt, *r.prompt], r.max_new_tokens, f"{r.label} (cold)")
            for salt, r in zip(salts, requests)]
