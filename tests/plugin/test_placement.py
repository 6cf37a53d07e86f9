"""The placement plan on the boxes users have: which card holds the suite's model, the
torchrun jobs and the SGLang server, and that no card is planned past its free memory.

The configs under data/ are Qwen's published config.json files (huggingface.co/Qwen/
Qwen2.5-14B-Instruct and Qwen2.5-7B-Instruct, blob/main/config.json; the architecture
fields match the model cards vendored in ZHUI/paddlenlp_model_readme, e.g.
Qwen/Qwen2.5-14B-Instruct/index.md: 48 layers, 40 Q / 8 KV heads).
"""

import dataclasses
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_ascend.box.placement import (
    CARD_MARGIN_BYTES,
    COLLECTIVE_BYTES,
    GIB,
    CardMemory,
    model_bytes,
    model_config,
    plan_placement,
)
from pytest_ascend.model.arithmetic import DTYPE_BYTES, kv_bytes_per_card
from pytest_ascend.serving.deploy import FRAMEWORK_MARGIN_BYTES, activation_bytes

DATA = Path(__file__).parent / "data"
QWEN_14B = model_config(str(DATA / "Qwen2.5-14B-Instruct"))
QWEN_7B = model_config(str(DATA / "Qwen2.5-7B-Instruct"))

# The boxes: Atlas 800T (910A / 910B4, 32 GB), Atlas 800T A2 (64 GB), A3 (16 dies of 64 GB),
# one H100 (80 GB) and one H200 (141 GB), taken as empty.
BOXES = {"800T": (8, 32 * GIB), "800T A2": (8, 64 * GIB), "A3": (16, 64 * GIB),
         "H100": (1, 80 * 10**9), "H200": (1, 141 * 10**9)}

# (model, box) -> the model's cards, the server's cards: why each, in the comments.
LAYOUTS = {
    # 14B fp16 is 29.5 GB of weights; with its headroom (KV for 8k tokens, the 4k prompt's
    # 2.5 GB of float32 logits) it needs 33.2 GiB on one card: a 32 GiB card cannot hold
    # it, two can (18.6 GiB each); the server needs two more (14.8 GB of weights each, over
    # 3/4 of a card alone), and gets cards 2,3, never the model's.
    ("14B", "800T"): ((0, 1), (2, 3)),
    # A 64 GiB card holds the model; what is left beside it (29.8 GiB, less the torchrun
    # ranks') cannot take a second 29.5 GB copy plus a 32k-token request's 6 GiB of KV: the
    # server gets card 1 to itself.
    ("14B", "800T A2"): ((0,), (1,)),
    ("14B", "A3"): ((0,), (1,)),
    # One card: the server may share it only because both fit with KV headroom.
    ("14B", "H100"): ((0,), (0,)),
    ("14B", "H200"): ((0,), (0,)),
    # 7B fp16 is 15.2 GB: one card each, the server beside on a card of its own where the
    # box has one.
    ("7B", "800T"): ((0,), (1,)),
    ("7B", "800T A2"): ((0,), (1,)),
    ("7B", "A3"): ((0,), (1,)),
    ("7B", "H100"): ((0,), (0,)),
    ("7B", "H200"): ((0,), (0,)),
}
CONFIGS = {"14B": QWEN_14B, "7B": QWEN_7B}


def empty_box(name):
    count, capacity = BOXES[name]
    return [CardMemory(index, capacity, capacity) for index in range(count)]


def check_invariants(placement):
    """Planned bytes within every card's free memory, less the margin wherever anything is
    planned; holds and planned bytes agree."""
    for card, row in zip(placement.cards, placement.to_json()["cards"]):
        assert row["planned_bytes"] <= card.free, row
        assert not row["holds"] or row["planned_bytes"] <= card.free - CARD_MARGIN_BYTES, row
        assert row["planned_bytes"] == sum(
            part.bytes_per_card for part in placement.parts if part.name in row["holds"])


@pytest.mark.parametrize("model, box", sorted(LAYOUTS))
def test_layout_with_the_server(model, box):
    cards = empty_box(box)
    placement = plan_placement(cards, CONFIGS[model], "float16", sglang=True,
                               torchrun=len(cards) > 1)
    model_cards, server_cards = LAYOUTS[model, box]
    assert placement.part("model").cards == model_cards
    assert placement.part("model").tp == len(model_cards)
    assert placement.part("sglang").cards == server_cards
    assert placement.part("sglang").tp == len(server_cards)
    assert placement.skipped == {}
    if len(cards) > 1:
        assert placement.part("torchrun").cards == tuple(range(len(cards)))
    check_invariants(placement)


@pytest.mark.parametrize("model, box", sorted(LAYOUTS))
def test_layout_without_the_server(model, box):
    cards = empty_box(box)
    placement = plan_placement(cards, CONFIGS[model], "float16", sglang=False,
                               torchrun=len(cards) > 1)
    assert placement.part("model").cards == LAYOUTS[model, box][0]
    assert placement.part("sglang") is None and placement.skipped == {}
    assert all("sglang" not in row["holds"] for row in placement.to_json()["cards"])
    check_invariants(placement)


def test_the_model_needs_its_weights_and_headroom_by_hand():
    element = 2
    weights = 14_770_033_664 * element  # Qwen2.5-14B's parameters (arithmetic.parameter_count)
    kv = 2 * 48 * 8 * 128 * element * 8192  # 192 KiB a token, 8192 tokens
    logits = 4096 * 152064 * (element + 4)
    prefill = 4096 * (4 * 5120 + 3 * 13824) * element
    assert model_bytes(QWEN_14B, "float16", 1) == (
        weights + kv + logits + prefill + FRAMEWORK_MARGIN_BYTES)


def test_the_server_fraction_makes_sglang_take_exactly_its_plan():
    """SGLang's static memory (weights and KV pool) is free-at-start - total x (1 - fraction);
    with the model resident beside it, that must be the server's planned bytes less its
    activation reserve, and above zero (else SGLang refuses: "Not enough memory")."""
    cards = empty_box("H100")
    placement = plan_placement(cards, QWEN_14B, "float16", sglang=True, torchrun=False)
    server, model = placement.part("sglang"), placement.part("model")
    card = cards[0]
    static = card.free - model.bytes_per_card - card.capacity * (1 - server.mem_fraction_static)
    reserve = FRAMEWORK_MARGIN_BYTES + activation_bytes(QWEN_14B, 1, 2)
    assert static == pytest.approx(server.bytes_per_card - reserve, abs=card.capacity * 1e-9)
    pool = static - 14_770_033_664 * 2
    assert pool >= 32768 * kv_bytes_per_card(QWEN_14B, 2, 1)  # one full-context request


def test_one_64gb_card_skips_the_server_naming_the_cards_that_would_hold_it():
    cards = [CardMemory(0, 64 * GIB, 64 * GIB)]
    placement = plan_placement(cards, QWEN_14B, "float16", sglang=True, torchrun=False)
    assert placement.part("model").cards == (0,)
    reason = placement.skipped["sglang"]
    assert "needs 1 card of its own" in reason
    assert "it would go on card 1, --ascend-devices=0,1" in reason
    assert "\n" not in reason
    check_invariants(placement)


def test_a_card_already_in_use_is_planned_from_its_free_memory():
    """Card 1 of an 800T A2 has 20 GiB in use by another job: the server goes on card 2."""
    cards = [CardMemory(i, 64 * GIB, (44 if i == 1 else 64) * GIB) for i in range(4)]
    placement = plan_placement(cards, QWEN_14B, "float16", sglang=True, torchrun=True)
    assert placement.part("sglang").cards == (2,)
    check_invariants(placement)


def test_torchrun_ranks_hold_the_split_model_only_where_the_heads_split():
    on_eight = plan_placement(empty_box("800T A2"), QWEN_14B, "float16", sglang=False,
                              torchrun=True).part("torchrun")
    assert on_eight.bytes_per_card == model_bytes(QWEN_14B, "float16", 8)  # 40 / 8 heads
    on_sixteen = plan_placement(empty_box("A3"), QWEN_14B, "float16", sglang=False,
                                torchrun=True).part("torchrun")
    assert on_sixteen.bytes_per_card == COLLECTIVE_BYTES + FRAMEWORK_MARGIN_BYTES  # 40 % 16


def test_the_single_card_problem_names_the_split():
    placement = plan_placement(empty_box("800T"), QWEN_14B, "float16", sglang=False,
                               torchrun=True)
    problem = placement.single_card_problem(QWEN_14B, "float16")
    assert "33.2 GiB on one card" in problem and "cards 0,1 hold it split 2 ways" in problem
    one = plan_placement(empty_box("800T A2"), QWEN_14B, "float16", sglang=False, torchrun=True)
    assert one.single_card_problem(QWEN_14B, "float16") is None


def test_a_config_that_cannot_be_sized_is_one_line(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ValueError, match=r"no hidden_size, .*not a decoder-only"):
        model_config(str(tmp_path))
    with pytest.raises(ValueError, match="no config.json there"):
        model_config(str(tmp_path / "missing"))


@st.composite
def boxes(draw):
    """A box of 1-16 like cards, each with 0-100 % of it already in use."""
    count = draw(st.integers(1, 16))
    capacity = draw(st.integers(4, 160)) * GIB
    used = draw(st.lists(st.integers(0, 100), min_size=count, max_size=count))
    return [CardMemory(i, capacity, capacity - capacity * pct // 100)
            for i, pct in enumerate(used)]


@settings(max_examples=300, deadline=None)
@given(cards=boxes(), model=st.sampled_from(sorted(CONFIGS)),
       dtype=st.sampled_from(sorted(DTYPE_BYTES)), sglang=st.booleans(),
       torchrun=st.booleans())
def test_no_card_is_ever_planned_past_its_free_memory(cards, model, dtype, sglang, torchrun):
    placement = plan_placement(cards, CONFIGS[model], dtype, sglang=sglang, torchrun=torchrun)
    check_invariants(placement)
    wanted = {"model", *(("sglang",) if sglang else ()),
              *(("torchrun",) if torchrun and len(cards) > 1 else ())}
    placed = {part.name for part in placement.parts}
    assert placed | set(placement.skipped) == wanted and not placed & set(placement.skipped)


def session_plan(**cli):
    from pytest_ascend.session import plan_session
    from pytest_ascend.settings import resolve_settings

    cli = {"device": "cpu", **cli}
    return plan_session(resolve_settings(cli=lambda spec: cli.get(spec.name),
                                         ini=lambda spec: None, environ={}))


def test_the_session_plans_at_start_and_reports_the_plan(tmp_path):
    from pytest_ascend.reports.provenance import ascend_block, header_lines

    plan = session_plan(cache=str(tmp_path), sglang_launch=True)
    assert plan.placement.part("model").cards == (plan.device.index,)
    # the host's RAM is no card of its own: the server keeps SGLang's sizing, gated by nothing
    assert plan.placement.part("sglang") is None and plan.placement.skipped == {}
    placed = [line for line in header_lines(plan) if line.startswith("pytest-ascend: placement: ")]
    assert placed and placed[0].startswith("pytest-ascend: placement: model on card ")
    assert ascend_block(plan, {}, None, None)["placement"] == plan.placement.to_json()


def test_sglang_tests_skip_with_the_plans_reason(tmp_path):
    from pytest_ascend.session import skip_reason

    plan = session_plan(cache=str(tmp_path), sglang_launch=True)
    one_card = plan_placement([CardMemory(0, 64 * GIB, 64 * GIB)], QWEN_14B, "float16",
                              sglang=True, torchrun=False)
    plan = dataclasses.replace(plan, placement=one_card)
    reason = skip_reason(plan, npu=True, slow=None, sglang=True)
    assert reason == f"--sglang-launch: {one_card.skipped['sglang']}"
    assert skip_reason(plan, npu=True, slow=None, sglang=False) is None
