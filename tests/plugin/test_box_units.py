"""The box's domain code against independent computations: the sibling rule, the HBM
pattern check with a planted fault, the card selection, and transfer timing."""

import time

import pytest

from pytest_ascend.box.memory_patterns import WORD, check_memory_patterns
from pytest_ascend.box.siblings import stragglers
from pytest_ascend.platforms.cpu import CpuDevice
from pytest_ascend.platforms.npu import NpuPlatform
from pytest_ascend.platforms.selection import parse_card_selection
from test_environment_facts import NPU_SMI


def test_a_card_below_the_median_of_the_others_is_named():
    figures = {f"card {i}": {"h2d_gb_s": 50.0 + i * 0.1, "matmul_tflops": 300.0}
               for i in range(8)}
    figures["card 6"]["matmul_tflops"] = 260.0  # 13% below 300
    figures["card 2"]["h2d_gb_s"] = 46.0  # 8% below ~50.4: within 10%
    found = stragglers(figures, tolerance=0.10)
    assert [(s.member, s.metric) for s in found] == [("card 6", "matmul_tflops")]
    assert found[0].shortfall == pytest.approx(40 / 300)
    assert "card 6: matmul_tflops 260 is 13% below the median of its siblings (300)" == \
        found[0].describe()


def test_two_cards_one_slow_names_only_the_slow_one():
    found = stragglers({"card 0": {"x_gb_s": 10.0}, "card 1": {"x_gb_s": 20.0}}, 0.10)
    assert [s.member for s in found] == ["card 0"]


def test_half_the_box_slow_still_names_the_slow_half():
    """The median of the *others*: four slow cards among eight are each compared with
    three slow and four fast siblings, whose median is fast."""
    figures = {f"card {i}": {"x_gb_s": 10.0 if i < 4 else 20.0} for i in range(8)}
    assert sorted(s.member for s in stragglers(figures, 0.10)) == [
        "card 0", "card 1", "card 2", "card 3"]


def test_a_planted_bit_flip_is_named_by_card_and_offset():
    card = CpuDevice()
    card.index = 5
    flipped_word = 123_457

    def flip(chunk):
        chunk[flipped_word] ^= 1 << 7

    report = check_memory_patterns(card, 4 << 20, after_write=flip)
    assert not report.ok and report.mismatches == 5  # once per pattern
    assert {f.offset for f in report.faults} == {flipped_word * WORD}
    text = report.describe()
    assert text.startswith("card 5: 5 mismatched word(s) in 4 MiB")
    assert f"at byte offset {flipped_word * WORD:#x}" in text
    assert "pattern 0xAA" in text and "expected 0xaaaaaaaa, read 0xaaaaaa2a" in text


def test_clean_memory_passes_every_pattern():
    report = check_memory_patterns(CpuDevice(), 4 << 20)
    assert report.ok and report.bytes_checked == 4 << 20 and report.faults == []


@pytest.mark.parametrize("text, count, indices", [
    ("all", None, None), ("ALL", None, None), ("4", 4, None), ("0,1,3", None, (0, 1, 3)),
    ("3,", None, (3,)), (" 6 , 1 ", None, (6, 1)),
])
def test_card_selection_spellings(text, count, indices):
    selection = parse_card_selection(text)
    assert (selection.count, selection.indices) == (count, indices)


@pytest.mark.parametrize("text, reason", [
    ("0", "use all, a number of cards"), ("-1", "use all"), ("two", "use all"),
    ("0,x", "non-negative integers"), (",", "non-negative integers"),
    ("2,2", "card 2 is listed twice"),
])
def test_card_selection_mistakes(text, reason):
    with pytest.raises(ValueError, match=reason):
        parse_card_selection(text)


def test_a_transfer_is_timed_with_every_card_synchronized():
    synced = []

    class Card(CpuDevice):
        def __init__(self, index):
            super().__init__()
            self.index = index

        def synchronize(self):
            synced.append(self.index)

    source, target = Card(0), Card(1)
    with source.transfer_timer(target) as timing:
        assert synced == [0, 1]
        time.sleep(0.05)
    assert synced == [0, 1, 0, 1]
    assert 45 <= timing.elapsed_ms < 500


# `npu-smi info -m` of a 910B box (one chip and the board's Mcu per NPU): the chip logic
# ids ASCEND_RT_VISIBLE_DEVICES and the runtime speak of, against the NPU and chip ids the
# `npu-smi info` table is keyed by (Huawei, npu-smi command reference, "info -m").
NPU_SMI_MAP = """\
        NPU ID                         Chip ID                        Chip Logic ID                  Chip Name
        0                              0                              0                              Ascend 910B3
        0                              1                              -                              Mcu
        1                              0                              1                              Ascend 910B3
        1                              1                              -                              Mcu
"""


def test_npu_bus_id_follows_the_visible_devices(monkeypatch):
    """The recorded `npu-smi info` and `info -m` outputs stand for the tools (their real
    parsers read them); logic id 1 is NPU 1 chip 0, whose Bus-Id is 0000:01:00.0."""
    recorded = {("npu-smi", "info"): NPU_SMI, ("npu-smi", "info", "-m"): NPU_SMI_MAP}
    monkeypatch.setattr("pytest_ascend.platforms.npu.run_tool", lambda argv: recorded[tuple(argv)])
    monkeypatch.setenv("ASCEND_RT_VISIBLE_DEVICES", "1,0")
    card = CpuDevice()
    card.index = 0
    assert NpuPlatform().bus_id(card) == "0000:01:00.0"
    card.index = 1
    assert NpuPlatform().bus_id(card) == "0000:c1:00.0"
    monkeypatch.setenv("ASCEND_RT_VISIBLE_DEVICES", "7")  # a logic id the box does not have
    card.index = 0
    assert NpuPlatform().bus_id(card) is None


def test_ranks_see_only_the_selected_cards_mapped_through_the_variable():
    from pytest_ascend.box.launch import rank_layout

    class Card:
        platform = NpuPlatform()

        def __init__(self, index):
            self.index = index

    cards = [Card(1), Card(3)]
    env = rank_layout(cards, {"ASCEND_RT_VISIBLE_DEVICES": "4,5,6,7", "HOME": "/root"}).env
    assert env["ASCEND_RT_VISIBLE_DEVICES"] == "5,7" and env["HOME"] == "/root"
    assert rank_layout(cards, {}).env["ASCEND_RT_VISIBLE_DEVICES"] == "1,3"
    assert rank_layout(cards).ranks == 2
    host = [CpuDevice()]
    assert rank_layout(host).ranks == 2 and "CUDA_VISIBLE_DEVICES" not in rank_layout(host, {}).env
