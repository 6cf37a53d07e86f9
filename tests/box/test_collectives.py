"""Collectives through torch.distributed on the selected cards, launched as a user would
(torchrun, one rank per card; two ranks sharing a host platform): every result checked
exactly, algbw and busbw per size kept in the operation's benchmark, busbw held to the link
datasheet where an official one is known."""

import json

import pytest

from pytest_ascend.box.collectives import OPERATIONS, operation_unsupported
from pytest_ascend.box.launch import rank_layout, torchrun_argv
from pytest_ascend.processes import run_helper

pytestmark = pytest.mark.npu

TIMEOUT_S = 600


def _size_range(card):
    """nccl-tests' sweep with a rank per card; a short one where the ranks share a host."""
    return ("8", "1G", "2") if card.platform.one_rank_per_card else ("8", "1M", "4")


@pytest.mark.parametrize("operation", OPERATIONS)
def test_collective(benchmark, operation, ascend_cards, ascend_plan, tmp_path,
                    ascend_progress):
    card = ascend_cards[0]
    reason = operation_unsupported(operation, card.platform.distributed_backend)
    if reason:
        pytest.skip(reason)
    layout = rank_layout(ascend_cards)  # rank i drives layout.cards[i]
    ranks = layout.ranks
    low, high, factor = _size_range(card)
    out = tmp_path / f"{operation}.json"
    argv = torchrun_argv("pytest_ascend.box.collectives", ranks, [
        "--out", str(out), "--ops", operation, "--device", card.kind,
        "-b", low, "-e", high, "-f", factor])
    ascend_progress(f"{operation}: {ranks} ranks on {card.kind} ({card.name}), sizes {low} to "
                    f"{high} bytes, x{factor}")
    proc = benchmark.pedantic(run_helper, args=(argv, TIMEOUT_S), kwargs={"env": layout.env},
                              rounds=1, iterations=1)
    assert out.exists(), f"torchrun wrote no results (exit {proc.returncode}): " \
                         f"{proc.stderr[-1500:]}"
    report = json.loads(out.read_text())
    assert report["complete"] and proc.returncode == 0, proc.stderr[-1500:]
    results = report["results"]
    peak = max(r["busbw_gb_s"] for r in results)
    benchmark.extra_info.update(
        ranks=ranks, card_by_rank=layout.card_indices, backend=report["backend"],
        dtype=report["dtype"], busbw_gb_s=peak,
        sizes=[r["bytes"] for r in results], time_us=[r["time_us"] for r in results],
        algbw_gb_s_by_size=[r["algbw_gb_s"] for r in results],
        busbw_gb_s_by_size=[r["busbw_gb_s"] for r in results])
    ascend_progress(f"{operation}: peak busbw {peak:.3g} GB/s over {len(results)} sizes")
    wrong = [f"{r['bytes']} B: {r['mismatch'] or 'wrong on another rank'}"
             for r in results if not r["correct"]]
    assert not wrong, f"{operation} gave wrong results at {len(wrong)} size(s): {wrong[:3]}"
    assert len(results) >= 5, f"{operation}: only {len(results)} sizes measured"
    sheet = card.platform.datasheet(card.name)
    if sheet is not None and sheet.official and sheet.link_gb_s:
        # above the card's whole interconnect: the timing is wrong, not the link fast
        assert peak <= sheet.link_gb_s * 1.05, (
            f"{operation} busbw {peak:.0f} GB/s exceeds {sheet.model}'s "
            f"{sheet.link_gb_s:.0f} GB/s interconnect")
