"""Prefix caching over the model's real KV cache: the RadixAttention idea, done for real.

The seed's "RadixAttention simulator" cached the tokenizer's output, so its speedup measured
nothing. Here the cache holds attention state: the keys and values the model computed for
each cached token. A new prompt's longest cached prefix is found in a radix tree (a trie
whose edges carry runs of tokens, as in SGLang's RadixCache), its KV is copied into a fresh
cache, and only the unmatched suffix is prefilled. Stored KV is never handed out or
mutated: callers get copies, so decoding from a result cannot corrupt the cache. Under a
token budget, least-recently-used leaves are evicted first.

Causal attention makes this exact: the KV of positions 0..m-1 depends only on tokens
0..m-1, so any prompt that starts with those tokens has that KV, whatever follows.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence, Union

import torch

from pytest_ascend.model.hf_compat import (
    cache_from_tensors,
    cache_tensors,
    forward_kwargs,
    output_cache,
)

KV = list[tuple[torch.Tensor, torch.Tensor]]  # per layer, [1, kv_heads, positions, head_dim]


@dataclass
class PrefillResult:
    """A prompt prefilled with whatever prefix the cache held.

    `logits` are the last position's ([1, vocab]); `past_key_values` is a cache of the whole
    prompt, the caller's to decode from; `matched_tokens` were reused, not recomputed.
    """

    logits: torch.Tensor
    past_key_values: Any
    matched_tokens: int
    prompt_tokens: int

    @property
    def computed_tokens(self) -> int:
        return self.prompt_tokens - self.matched_tokens


@dataclass(eq=False)
class _Node:
    """An edge of the radix tree: its run of tokens and their KV, below `parent`."""

    tokens: tuple[int, ...]
    kv: KV
    parent: Optional["_Node"]
    children: dict[int, "_Node"] = field(default_factory=dict)
    last_used: int = 0


TokenIds = Union[Sequence[int], torch.Tensor]


class PrefixCache:
    """Prefill prompts on `model`, reusing the KV of the longest cached prefix.

    `budget_tokens` bounds the tokens held across all cached prefixes; after each insertion
    the least recently used leaves are evicted until the cache fits.
    """

    def __init__(self, model: Any, *, budget_tokens: int) -> None:
        if budget_tokens < 0:
            raise ValueError(f"budget_tokens must be >= 0, got {budget_tokens}")
        self.model = model
        self.budget_tokens = budget_tokens
        self.cached_tokens = 0
        self.prompt_tokens_seen = 0
        self.matched_tokens_total = 0
        self._root = _Node((), [], None)
        self._clock = itertools.count(1)

    @property
    def hit_rate(self) -> float:
        """Share of all prompt tokens seen so far that came from the cache."""
        return self.matched_tokens_total / self.prompt_tokens_seen if self.prompt_tokens_seen else 0.0

    def prefill(self, input_ids: TokenIds) -> PrefillResult:
        """Prefill one prompt, recomputing only what the cache does not hold, and cache it.

        At least the last token is always computed: its logits are part of the result.
        """
        tokens = _as_token_list(input_ids)
        if not tokens:
            raise ValueError("prefill needs at least one token")
        path = self._match(tokens, limit=len(tokens) - 1)
        matched = sum(take for _, take in path)
        suffix = torch.tensor([tokens[matched:]], device=self.model.device)
        reused = cache_from_tensors(_gather(path), self.model.config) if matched else None
        with torch.inference_mode():
            out = self.model(input_ids=suffix, **forward_kwargs(self.model, reused))
        past = output_cache(out)
        self.prompt_tokens_seen += len(tokens)
        self.matched_tokens_total += matched
        self.insert(tokens, past)
        return PrefillResult(out.logits[:, -1, :], past, matched, len(tokens))

    def insert(self, input_ids: TokenIds, past_key_values: Any) -> None:
        """Cache the KV of `input_ids` held in `past_key_values` (its first len(input_ids)
        positions; e.g. a prompt plus the answer decoded from it, for the next turn)."""
        tokens = _as_token_list(input_ids)
        full = cache_tensors(past_key_values)
        if full and full[0][0].shape[2] < len(tokens):
            raise ValueError(
                f"the cache holds {full[0][0].shape[2]} positions, fewer than the "
                f"{len(tokens)} tokens to insert"
            )
        node, i = self._root, 0
        while i < len(tokens):
            child = node.children.get(tokens[i])
            if child is None:
                leaf = _Node(tuple(tokens[i:]), _slice(full, i, len(tokens)), node)
                node.children[tokens[i]] = leaf
                self.cached_tokens += len(leaf.tokens)
                self._touch(leaf)
                break
            common = _common_prefix(child.tokens, tokens[i:])
            if common < len(child.tokens):
                child = self._split(child, common)
            i += common
            node = child
        self._touch(node)
        self._evict()

    def _match(self, tokens: list[int], limit: int) -> list[tuple[_Node, int]]:
        """The cached nodes along `tokens`, with how many tokens of each match (<= limit)."""
        path: list[tuple[_Node, int]] = []
        node, i = self._root, 0
        while i < limit:
            child = node.children.get(tokens[i])
            if child is None:
                break
            take = min(_common_prefix(child.tokens, tokens[i:]), limit - i)
            path.append((child, take))
            i += take
            if take < len(child.tokens):
                break
            node = child
        if path:
            self._touch(path[-1][0])
        return path

    def _split(self, node: _Node, at: int) -> _Node:
        """Cut `node`'s edge after `at` tokens; returns the new upper part."""
        upper = _Node(node.tokens[:at], _slice(node.kv, 0, at), node.parent,
                      last_used=node.last_used)
        node.parent.children[node.tokens[0]] = upper
        node.tokens, node.kv, node.parent = node.tokens[at:], _slice(node.kv, at, None), upper
        upper.children[node.tokens[0]] = node
        return upper

    def _touch(self, node: _Node) -> None:
        """Mark `node` and its ancestors used now (an ancestor is used whenever a child is)."""
        now = next(self._clock)
        while node is not None:
            node.last_used = now
            node = node.parent

    def _evict(self) -> None:
        while self.cached_tokens > self.budget_tokens:
            leaf = min(self._leaves(), key=lambda n: n.last_used)
            del leaf.parent.children[leaf.tokens[0]]
            self.cached_tokens -= len(leaf.tokens)

    def _leaves(self) -> list[_Node]:
        leaves, stack = [], list(self._root.children.values())
        while stack:
            node = stack.pop()
            if node.children:
                stack.extend(node.children.values())
            else:
                leaves.append(node)
        return leaves


def _as_token_list(input_ids: TokenIds) -> list[int]:
    if isinstance(input_ids, torch.Tensor):
        if input_ids.dim() == 2:
            if input_ids.shape[0] != 1:
                raise ValueError(f"PrefixCache takes one prompt at a time, got a batch of "
                                 f"{input_ids.shape[0]}")
            input_ids = input_ids[0]
        return [int(t) for t in input_ids.tolist()]
    return [int(t) for t in input_ids]


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def _slice(kv: KV, start: int, stop: Optional[int]) -> KV:
    """Copies (not views) of positions [start, stop): a stored segment owns its memory."""
    return [(k[:, :, start:stop].clone(), v[:, :, start:stop].clone()) for k, v in kv]


def _gather(path: list[tuple[_Node, int]]) -> KV:
    """New tensors holding the matched prefix: the stored segments are never handed out."""
    layers = len(path[0][0].kv)
    return [
        (
            torch.cat([node.kv[layer][0][:, :, :take] for node, take in path], dim=2),
            torch.cat([node.kv[layer][1][:, :, :take] for node, take in path], dim=2),
        )
        for layer in range(layers)
    ]
