"""Which card holds what: one placement plan for a session, made from the cards' free memory
and the model's config before anything loads.

A session can put three parts on the selected cards:

- `model`: the suite's own copy of the model, loaded in-process on the first card; when one
  card cannot hold it, the smallest tensor-parallel split over the first cards that can
  (the single-card tests then skip, as `model.loading.check_fits` says);
- `torchrun`: the torchrun jobs (the tensor-parallel decode and the collectives), one rank
  on every selected card;
- `sglang`: the server `--sglang-launch` starts, on as many cards as it needs.

The rules, in the order they are applied:

1. Nothing is planned into the last CARD_MARGIN_BYTES of any card, so no card's planned
   bytes ever exceed its free memory.
2. The model goes first, on card 0 alone, else on the first `tp` cards for the smallest `tp`
   that splits its attention heads and fits (weights plus SUITE_* headroom).
3. The torchrun jobs go on every card, beside the model: they run while the suite's model
   is loaded.
4. The server goes on cards that do not hold the model, the fewest that serve one request
   of the model's full context (`serving.deploy.serving_config`: weights at most 3/4 of
   what is left, KV for one full-length request, the activation reserve). Only when no
   such cards exist may it share the model's cards, and only where both fit with that KV
   headroom. Otherwise it is skipped, with a reason naming the cards that would hold it.

Every part is planned as if resident at once. That is conservative for the server: the
plugin runs the tests on a live server last, after the torchrun jobs have exited. The
server's `--mem-fraction-static` is computed from what is resident when it starts (the
model), so SGLang takes exactly its planned bytes: SGLang's static memory is
`free at start - total x (1 - mem_fraction_static)` (weights plus KV pool;
python/sglang/srt/model_executor/model_runner.py, profile_max_num_token), and it refuses to
start when that is <= 0.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from pytest_ascend.model.arithmetic import (
    DTYPE_BYTES,
    attention_heads,
    config_value,
    kv_bytes_per_card,
    kv_heads,
    parameter_count,
    split_sizes,
)
from pytest_ascend.serving.deploy import (
    FRAMEWORK_MARGIN_BYTES,
    DeployError,
    activation_bytes,
    serving_config,
)

GIB = 1 << 30

# Never planned on any card: the runtime's own context in every process that opens the card
# (a few hundred MB for CANN or CUDA), HCCL's default 200 MB communication buffer
# (HCCL_BUFFSIZE), and drift in free memory between the reading and the load.
CARD_MARGIN_BYTES = 1 * GIB

# The suite's own model decodes at most its longest prompt: the golden's 4096-token
# long-context prompt (numerics.golden.LONG_CONTEXT, 4096 + 32 new tokens). Its prefill
# holds every position's logits in the model's dtype and their float32 log-softmax, which
# for a 152k vocabulary (2.5 GB) outweighs the MLP's intermediates. The KV budget is twice
# that prompt, for the batched decode tests.
SUITE_PREFILL_TOKENS = 4096
SUITE_KV_TOKENS = 2 * SUITE_PREFILL_TOKENS
LOGIT_SOFTMAX_BYTES = 4  # float32 log-softmax beside the logits

# The collectives sweep to 1 GiB buffers (tests/box/test_collectives.py, "-e 1G"): input,
# output and the expected result, on every rank.
COLLECTIVE_BYTES = 3 * GIB

# The server's KV pool: at least one request of the model's full context (what SGLang
# advertises by default), at most SERVER_POOL_REQUESTS of them: the suite's serving tests
# send short concurrent requests, and a bounded pool leaves the rest of the card free.
SERVER_POOL_REQUESTS = 4

PARTS = ("model", "torchrun", "sglang")


@dataclass(frozen=True)
class CardMemory:
    """One selected card as the planner sees it: its index (--ascend-devices), its capacity
    and its free bytes now (the capacity for a described box)."""

    index: int
    capacity: int
    free: int


@dataclass(frozen=True)
class PartPlacement:
    """Where one part goes: its cards (indices), tensor-parallel size and bytes on each."""

    name: str
    cards: tuple[int, ...]
    tp: int
    bytes_per_card: int
    detail: str = ""
    mem_fraction_static: Optional[float] = None  # the server's, for SGLang


@dataclass(frozen=True)
class Placement:
    """The plan: every card, the parts placed on them and the parts skipped, with why."""

    cards: tuple[CardMemory, ...]
    parts: tuple[PartPlacement, ...] = ()
    skipped: dict = field(default_factory=dict)

    def part(self, name: str) -> Optional[PartPlacement]:
        return next((part for part in self.parts if part.name == name), None)

    def holds(self, index: int) -> list[str]:
        return [part.name for part in self.parts if index in part.cards]

    def planned_bytes(self, index: int) -> int:
        return sum(part.bytes_per_card for part in self.parts if index in part.cards)

    def single_card_problem(self, model_config: Any, dtype: str) -> Optional[str]:
        """Why the suite's single-card tests cannot run on card 0 (its model needs a split,
        or fits nowhere), or None when card 0 holds the model with its headroom."""
        model = self.part("model")
        if model is not None and model.tp == 1:
            return None
        first = self.cards[0]
        where = (f"the suite's {dtype} model needs {_gib(model_bytes(model_config, dtype, 1))} "
                 f"on one card (weights, and headroom for its longest prompt) and card "
                 f"{first.index} has {_gib(first.free)} free")
        if model is None:
            return f"{where}: {self.skipped.get('model', 'not placed')}"
        return (f"{where}: a single card cannot hold it, so the single-card tests skip; cards "
                f"{_card_list(model.cards)} hold it split {model.tp} ways")

    def to_json(self) -> dict:
        """{"cards": [{index, capacity_bytes, planned_bytes, holds}], "skipped": {part:
        reason}}: what `pytest-ascend plan --json` prints and the `ascend` block carries."""
        return {
            "cards": [{"index": card.index, "capacity_bytes": card.capacity,
                       "planned_bytes": self.planned_bytes(card.index),
                       "holds": self.holds(card.index)} for card in self.cards],
            "skipped": dict(self.skipped),
        }

    def lines(self) -> list[str]:
        """One line per placed part and per skipped part, for the report header."""
        placed = [f"{part.name} on card{'s' if len(part.cards) > 1 else ''} "
                  f"{_card_list(part.cards)} (tp {part.tp}, {_gib(part.bytes_per_card)} each"
                  f"{'; ' + part.detail if part.detail else ''})" for part in self.parts]
        return placed + [f"{name} skipped: {reason}" for name, reason in self.skipped.items()]

    def table(self) -> str:
        """The plan as a readable table: one row per card, then the skipped parts."""
        rows = [("card", "capacity", "planned", "free after", "holds")]
        for card in self.cards:
            planned = self.planned_bytes(card.index)
            rows.append((str(card.index), _gib(card.capacity), _gib(planned),
                         _gib(card.free - planned), ", ".join(self.holds(card.index)) or "-"))
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        text = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
                for row in rows]
        text += [f"  {line}" for line in self.lines()]
        return "\n".join(text)


def model_bytes(model_config: Any, dtype: str, tp: int) -> int:
    """What the suite's copy of the model needs on each of `tp` cards: its share of the
    weights, KV for SUITE_KV_TOKENS, the longest prompt's prefill (activations and logits)
    and the framework's workspace."""
    element = DTYPE_BYTES[dtype]
    weights = math.ceil(parameter_count(model_config) * element / tp)
    kv = kv_bytes_per_card(model_config, element, tp) * SUITE_KV_TOKENS
    logits = SUITE_PREFILL_TOKENS * int(config_value(model_config, "vocab_size")) * (
        element + LOGIT_SOFTMAX_BYTES)
    return (weights + kv + logits + FRAMEWORK_MARGIN_BYTES
            + activation_bytes(model_config, tp, element, SUITE_PREFILL_TOKENS))


def torchrun_bytes(model_config: Any, dtype: str, ranks: int) -> int:
    """What one torchrun rank needs on its card: the larger of the collectives' buffers and,
    when the heads split across `ranks` (else that job skips itself), its share of the
    tensor-parallel model."""
    need = COLLECTIVE_BYTES + FRAMEWORK_MARGIN_BYTES
    if attention_heads(model_config) % ranks == 0 and kv_heads(model_config) % ranks == 0:
        need = max(need, model_bytes(model_config, dtype, ranks))
    return need


def plan_placement(
    cards: Sequence[CardMemory],
    model_config: Any,
    dtype: str,
    *,
    sglang: bool,
    torchrun: bool,
) -> Placement:
    """The placement of the suite's model, the torchrun jobs (when `torchrun`) and the SGLang
    server (when `sglang`) on `cards`, by the rules in this module's docstring."""
    if not cards:
        raise ValueError("plan_placement needs at least one card")
    if dtype not in DTYPE_BYTES:
        raise ValueError(f"dtype {dtype!r}: use one of {', '.join(DTYPE_BYTES)}")
    room = {card.index: card.free - CARD_MARGIN_BYTES for card in cards}
    skipped: dict[str, str] = {}
    model = _place_model(cards, model_config, dtype, room)
    if isinstance(model, str):
        skipped["model"], model = model, None
    else:
        _take(model, room)
    # What is resident on each card when the server starts: the model only, since the
    # torchrun jobs have exited by then (see the docstring).
    resident = {card.index: model.bytes_per_card if model and card.index in model.cards else 0
                for card in cards}
    jobs = None
    if torchrun and len(cards) >= 2:
        need = torchrun_bytes(model_config, dtype, len(cards))
        short = [card.index for card in cards if room[card.index] < need]
        if short:
            skipped["torchrun"] = (
                f"{len(cards)} ranks need {_gib(need)} on every card; card"
                f"{'s' if len(short) > 1 else ''} {_card_list(short)} "
                f"{'have' if len(short) > 1 else 'has'} less left beside the model")
        else:
            jobs = _take(PartPlacement("torchrun", tuple(card.index for card in cards),
                                       len(cards), need, "tensor parallel, collectives"), room)
    server = None
    if sglang:
        server = _place_server(cards, model_config, dtype, room, resident, model)
        if isinstance(server, str):
            skipped["sglang"], server = server, None
        else:
            _take(server, room)
    parts = tuple(part for part in (model, jobs, server) if part is not None)
    return Placement(tuple(cards), parts, skipped)


def _place_model(cards: Sequence[CardMemory], model_config: Any, dtype: str,
                 room: dict) -> "PartPlacement | str":
    sizes = split_sizes(attention_heads(model_config))
    for tp in sizes:
        if tp > len(cards):
            break
        need = model_bytes(model_config, dtype, tp)
        chosen = [card.index for card in cards[:tp]]
        if all(room[index] >= need for index in chosen):
            return PartPlacement("model", tuple(chosen), tp, need,
                                 "in-process" if tp == 1 else "split: single-card tests skip")
    usable = max(room.values())
    enough = next((tp for tp in sizes if model_bytes(model_config, dtype, tp) <= usable), None)
    if enough is None:
        return (f"the model fits no split over {max(sizes)} cards of {_gib(usable)} usable: "
                f"use cards with more memory or a smaller dtype")
    if enough <= len(cards):
        return (f"split {enough} ways the model needs "
                f"{_gib(model_bytes(model_config, dtype, enough))} on each of the first {enough} "
                f"selected cards, and some have less free: free them, or list the freest first "
                f"in --ascend-devices")
    return (f"the model needs {enough} cards ({_gib(model_bytes(model_config, dtype, enough))} "
            f"each) and {len(cards)} {'are' if len(cards) > 1 else 'is'} selected, with at most "
            f"{_gib(usable)} usable: select {enough}, as in "
            f"--ascend-devices={','.join(map(str, range(enough)))}")


def _place_server(cards: Sequence[CardMemory], model_config: Any, dtype: str, room: dict,
                  resident: dict, model: Optional[PartPlacement]) -> "PartPlacement | str":
    context = int(config_value(model_config, "max_position_embeddings", 4096))
    held = set(model.cards) if model is not None else set()
    others = [card for card in cards if card.index not in held]
    for pool, how in ((others, ""), (list(cards) if held else [], "shares the model's cards")):
        placed = _server_on(pool, model_config, dtype, context, room, resident, how)
        if placed is not None:
            return placed
    return _server_reason(cards, model_config, dtype, context, room, held)


def _server_on(pool: Sequence[CardMemory], model_config: Any, dtype: str, context: int,
               room: dict, resident: dict, how: str) -> Optional[PartPlacement]:
    """The server on the fewest cards of `pool` (those with the most room first) that serve
    one full-context request, or None."""
    ranked = sorted(pool, key=lambda card: (-room[card.index], card.index))
    for tp in split_sizes(attention_heads(model_config)):
        if tp > len(ranked):
            break
        chosen = sorted(ranked[:tp], key=lambda card: card.index)
        usable = min(room[card.index] for card in chosen)
        if usable <= 0:
            continue
        try:
            config = serving_config(model_config, usable, context_len=context, dtype=dtype)
        except DeployError:
            continue
        if config.tp_size != tp:
            continue
        tokens = min(config.max_total_tokens, SERVER_POOL_REQUESTS * context)
        static = config.weight_bytes_per_device + tokens * config.kv_bytes_per_token_per_device
        need = static + config.reserve_bytes
        # SGLang's static memory is free-at-start - total x (1 - fraction); solve for the
        # fraction that makes it `static` on every card, the smallest where cards differ.
        fraction = min(1 - (card.free - resident[card.index] - static) / card.capacity
                       for card in chosen)
        detail = f"{tokens} KV tokens, --mem-fraction-static {fraction:.4f}"
        return PartPlacement("sglang", tuple(card.index for card in chosen), tp, need,
                             f"{detail}; {how}" if how else detail, fraction)
    return None


def _server_reason(cards: Sequence[CardMemory], model_config: Any, dtype: str, context: int,
                   room: dict, held: set) -> str:
    """Why the server has no place, naming the cards that would hold it: as many more cards
    like the largest selected one as a fresh server needs."""
    best = max(card.capacity for card in cards) - CARD_MARGIN_BYTES
    left = ", ".join(f"card {c.index} {_gib(room[c.index])}" for c in cards)
    try:
        need = serving_config(model_config, best, context_len=context, dtype=dtype).tp_size
    except DeployError as exc:
        return f"the SGLang server fits no cards of this size: {exc}"
    start = max(card.index for card in cards) + 1
    extra = list(range(start, start + need))
    selected = [card.index for card in cards]
    return (f"the SGLang server needs {need} card{'s' if need > 1 else ''} of its own for "
            f"{context}-token contexts and the selected cards have too little left beside the "
            f"suite's model ({left}): it would go on card{'s' if need > 1 else ''} "
            f"{_card_list(extra)}, --ascend-devices={','.join(map(str, selected + extra))}; "
            f"or run `pytest -m sglang --sglang-launch` as a session of its own")


def _take(part: PartPlacement, room: dict) -> PartPlacement:
    for index in part.cards:
        room[index] -= part.bytes_per_card
    return part


def _gib(value: int) -> str:
    return f"{value / GIB:.1f} GiB"


def _card_list(indices: Sequence[int]) -> str:
    return ",".join(map(str, indices))


def model_config(spec: str) -> dict:
    """A model's config as a dict, read without loading anything: a built-in model's recipe,
    or a checkpoint directory's config.json. Raises ValueError with one line."""
    from pytest_ascend.model import tiny

    if tiny.is_builtin_spec(spec):
        recipe = tiny.parse_spec(spec)
        return {"model_type": "qwen2", "tie_word_embeddings": False,
                **dataclasses.asdict(recipe)}
    path = Path(spec).expanduser() / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{spec}: no config.json there; pass a checkpoint directory") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: unreadable ({exc})") from None
    missing = [key for key in ("hidden_size", "num_attention_heads", "num_hidden_layers",
                               "intermediate_size", "vocab_size")
               if not isinstance(config.get(key) if isinstance(config, dict) else None, int)]
    if missing:
        raise ValueError(f"{path}: no {', '.join(missing)}: not a decoder-only transformers "
                         f"config the planner can size")
    return config
