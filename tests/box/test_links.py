"""Every link: copy bandwidth for every ordered pair of selected cards, printed as a matrix,
kept in the benchmark JSON, drawn as a heat map under --ascend-report-dir, and each link
judged against the median of the others."""

import pytest

from pytest_ascend.box.render import write_box_json, write_link_heatmap
from pytest_ascend.box.siblings import shared_device, stragglers
from pytest_ascend.box.sweep import sweep_links

pytestmark = pytest.mark.npu


def test_every_link_keeps_up_with_its_siblings(benchmark, ascend_cards, ascend_plan,
                                               ascend_box, ascend_progress):
    if len(ascend_cards) < 2:
        pytest.skip(f"one card selected (--ascend-devices {ascend_plan.settings.devices.text}):"
                    f" no links between cards; select more with --ascend-devices all")
    if shared_device(ascend_cards):
        pytest.skip(shared_device(ascend_cards))
    matrix = benchmark.pedantic(sweep_links, args=(ascend_cards,),
                                kwargs={"progress": ascend_progress}, rounds=1, iterations=1)
    slow = stragglers(matrix.by_label(), ascend_plan.settings.card_tolerance)
    ascend_box.links, ascend_box.slow_links = matrix, slow
    benchmark.extra_info.update(cards=list(matrix.cards), link_bytes=matrix.nbytes,
                                link_gb_s=matrix.rows(),
                                slow_links=[s.member for s in slow])
    report_dir = ascend_plan.settings.report_dir
    if report_dir is not None:
        write_box_json(report_dir / "box.json", ascend_box.sweep, matrix)
        write_link_heatmap(report_dir / "links.png", matrix,
                           f"{ascend_cards[0].name}: card-to-card copy GB/s")
        ascend_progress(f"link matrix written to {report_dir / 'links.png'}")
    assert not slow, (
        f"{len(slow)} link(s) more than {ascend_plan.settings.card_tolerance:.0%} below the "
        f"median of the others: " + "; ".join(s.describe() for s in slow))
