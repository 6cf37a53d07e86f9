"""The NPU platform as an Atlas box really is, exercised without one: card order for torchrun,
bus ids in a container, chips with two dies, NNAE-only installs, what each chip can do.

No Ascend hardware was at hand. The tool outputs under data/ are written in the exact layout
of verbatim `npu-smi info` / `npu-smi info -m` output from an 8-card 910B3 host published with
a public Huawei project (and the two-die 910C form that project shows), for the shapes
discussed here (a container holding NPUs 4-7; a 910C board); they are not recordings from a
box of ours. The parsers are run on them as they are, and `npu-smi` itself is a script that
prints them, so the platform code runs exactly as on a box.
"""

import os
import stat
from pathlib import Path

import pytest
import torch

from pytest_ascend.box.card_checks import matmul_not_applicable
from pytest_ascend.box.launch import rank_layout
from pytest_ascend.platforms.cpu import CpuDevice
from pytest_ascend.platforms.npu import (
    NpuPlatform,
    bus_id_of,
    cann_version,
    parse_npu_smi,
    parse_npu_smi_map,
)

DATA = Path(__file__).parent / "data"


def npu_card(index, name="Ascend910B3"):
    """A card as the NPU platform sees it: its index among the visible cards and its SoC
    name (the device's own measuring is not under test here)."""
    card = CpuDevice(NpuPlatform())
    card.index, card.name = index, name
    return card


def test_torchrun_gets_ascending_cards_and_rank_i_drives_the_ith_lowest():
    """torch_npu >= 2.6 sees no device under ASCEND_RT_VISIBLE_DEVICES=3,1."""
    cards = [npu_card(3), npu_card(1)]
    layout = rank_layout(cards, {"HOME": "/root"})
    assert layout.env["ASCEND_RT_VISIBLE_DEVICES"] == "1,3" and layout.env["HOME"] == "/root"
    assert layout.card_indices == [1, 3] and layout.ranks == 2
    # mapped through the variable the session already has, still ascending
    layout = rank_layout([npu_card(3), npu_card(0), npu_card(2)],
                         {"ASCEND_RT_VISIBLE_DEVICES": "4,5,6,7"})
    assert layout.env["ASCEND_RT_VISIBLE_DEVICES"] == "4,6,7"
    assert layout.card_indices == [0, 2, 3]
    assert rank_layout(cards, {}).env["ASCEND_RT_VISIBLE_DEVICES"] == "1,3"


def test_ranks_on_the_host_share_it():
    layout = rank_layout([CpuDevice()], {})
    assert layout.ranks == 2 and layout.card_indices == [0, 0]
    assert "ASCEND_RT_VISIBLE_DEVICES" not in layout.env


def test_npu_smi_map_gives_each_logic_id_its_npu_and_chip():
    assert parse_npu_smi_map((DATA / "npu_smi_info_m_910b3_container.txt").read_text()) == {
        0: (4, 0), 1: (5, 0), 2: (6, 0), 3: (7, 0)}
    assert parse_npu_smi_map((DATA / "npu_smi_info_m_910c.txt").read_text()) == {
        0: (0, 0), 1: (0, 1), 2: (1, 0), 3: (1, 1)}


def test_npu_smi_table_gives_every_die_of_a_910c():
    chips = parse_npu_smi((DATA / "npu_smi_info_910c.txt").read_text())
    assert [(c["npu"], c["chip"], c["bus_id"]) for c in chips] == [
        (0, 0, "0000:9d:00.0"), (0, 1, "0000:9f:00.0"),
        (1, 0, "0000:99:00.0"), (1, 1, "0000:9b:00.0")]
    assert {c["hbm_total_mb"] for c in chips} == {65536}


def test_bus_id_of_a_die_goes_through_the_logic_id():
    assert bus_id_of(3, (DATA / "npu_smi_info_m_910c.txt").read_text(),
                     (DATA / "npu_smi_info_910c.txt").read_text()) == "0000:9b:00.0"
    assert bus_id_of(9, (DATA / "npu_smi_info_m_910c.txt").read_text(),
                     (DATA / "npu_smi_info_910c.txt").read_text()) is None


@pytest.fixture
def npu_smi_on_path(tmp_path, monkeypatch):
    """An `npu-smi` that prints the container's recorded outputs, first on PATH."""
    tool = tmp_path / "bin" / "npu-smi"
    tool.parent.mkdir()
    tool.write_text(
        "#!/bin/sh\n"
        f'if [ "$2" = "-m" ]; then cat {DATA / "npu_smi_info_m_910b3_container.txt"}; '
        f'else cat {DATA / "npu_smi_info_910b3_container.txt"}; fi\n')
    tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tool.parent}{os.pathsep}{os.environ['PATH']}")


def test_bus_ids_in_a_container_map_logical_ids_through_npu_smi_m(npu_smi_on_path,
                                                                  monkeypatch):
    """The container holds NPUs 4-7 as logical devices 0-3; the session sees logical 1 and 3.
    Card 1 of the session is logical 3, NPU 7 in npu-smi's table."""
    monkeypatch.setenv("ASCEND_RT_VISIBLE_DEVICES", "1,3")
    assert NpuPlatform().bus_id(npu_card(0)) == "0000:41:00.0"  # logical 1: NPU 5
    assert NpuPlatform().bus_id(npu_card(1)) == "0000:01:00.0"  # logical 3: NPU 7
    monkeypatch.delenv("ASCEND_RT_VISIBLE_DEVICES")
    assert NpuPlatform().bus_id(npu_card(0)) == "0000:81:00.0"  # logical 0: NPU 4


def test_cann_version_falls_back_to_the_nnae_install_info(tmp_path):
    nnae = tmp_path / "nnae" / "latest"
    nnae.mkdir(parents=True)
    (nnae / "ascend_nnae_install.info").write_text(
        (DATA / "ascend_nnae_install.info").read_text())
    assert cann_version({}, root=tmp_path) == "8.0.RC3"


@pytest.mark.parametrize("name, model", [
    ("Ascend910B", "Ascend 910A"),  # first generation (SocVersion 104), not a B1/B2
    ("Ascend910ProB", "Ascend 910A"),
    ("Ascend910A", "Ascend 910A"),
    ("Ascend910B1", "Ascend 910B1/B2"),
    ("Ascend910B2", "Ascend 910B1/B2"),
    ("Ascend910B3", "Ascend 910B3"),
    ("Ascend910B4-1", "Ascend 910B4"),
])
def test_datasheet_patterns_are_anchored(name, model):
    assert NpuPlatform().datasheet(name).model == model


@pytest.mark.parametrize("name, bf16, fp32_reduced, sglang, compiles", [
    ("Ascend910A", False, True, False, True),
    ("Ascend910ProA", False, True, False, True),
    ("Ascend910B", False, True, False, True),
    ("Ascend910B1", True, False, True, False),
    ("Ascend910B4", True, False, True, False),
    ("Ascend910_9391", True, False, True, False),  # A3 (910C)
    ("Ascend310P3", False, True, False, True),
])
def test_what_each_chip_can_do(name, bf16, fp32_reduced, sglang, compiles):
    platform, card = NpuPlatform(), npu_card(0, name)
    assert (platform.bf16_unsupported(card) is None) == bf16
    assert (platform.float32_matmul_reduced(card) is None) == (not fp32_reduced)
    assert (platform.sglang_unsupported(card) is None) == sglang
    assert (platform.first_use_compile_s(card) > 0) == compiles
    for reason in (platform.bf16_unsupported(card), platform.float32_matmul_reduced(card),
                   platform.sglang_unsupported(card)):
        assert reason is None or (name in reason and "\n" not in reason)


@pytest.mark.parametrize("name, dtype, skipped", [
    ("Ascend910A", torch.bfloat16, True), ("Ascend910A", torch.float32, True),
    ("Ascend910A", torch.float16, False), ("Ascend910B3", torch.bfloat16, False),
    ("Ascend910B3", torch.float32, False)])
def test_matmul_cases_a_chip_cannot_compute_as_asked_say_why(name, dtype, skipped):
    """The compat and box matmul checks skip with this reason (no bf16 on a 910A; float32
    run as float16 there), instead of failing the dtype's bound and blaming HF32."""
    reason = matmul_not_applicable(npu_card(0, name), dtype)
    assert (reason is not None) == skipped
    assert reason is None or name in reason


def test_launch_blocking_is_a_timing_caveat():
    assert NpuPlatform().timing_caveat({}) is None
    assert NpuPlatform().timing_caveat({"ASCEND_LAUNCH_BLOCKING": "0"}) is None
    assert "ASCEND_LAUNCH_BLOCKING=1" in NpuPlatform().timing_caveat(
        {"ASCEND_LAUNCH_BLOCKING": "1"})
