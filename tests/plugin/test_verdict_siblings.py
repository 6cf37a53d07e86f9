"""The sibling rule at its edge: a card exactly at the tolerance passes, a hair below fails,
the reference is the median of the *others*, and no figure is judged without siblings."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_ascend.box.siblings import Straggler, stragglers

BOX = {f"card {i}": {"hbm_gb_s": 100.0} for i in range(8)}


def box_with(card, value, metric="hbm_gb_s"):
    figures = {member: dict(values) for member, values in BOX.items()}
    figures[card][metric] = value
    return figures


@pytest.mark.parametrize("value, named", [(90.0, False), (89.99, True), (95.0, False),
                                          (10.0, True)])
def test_a_card_below_its_siblings_at_and_either_side_of_the_tolerance(value, named):
    found = stragglers(box_with("card 3", value), tolerance=0.10)
    assert [s.member for s in found] == (["card 3"] if named else [])
    if named:
        assert found[0] == Straggler("card 3", "hbm_gb_s", value, 100.0)


def test_a_card_above_its_siblings_is_never_a_straggler():
    assert stragglers(box_with("card 0", 1000.0), tolerance=0.10) == []


def test_a_metric_only_one_card_has_is_not_judged():
    figures = box_with("card 5", 1.0, metric="p2p_gb_s")
    assert stragglers(figures, tolerance=0.10) == []
    figures["card 6"]["p2p_gb_s"] = 50.0
    assert [(s.member, s.metric, s.siblings_median) for s in stragglers(figures, 0.10)] == \
        [("card 5", "p2p_gb_s", 50.0)]


def test_siblings_with_a_zero_median_judge_nothing():
    figures = {"card 0": {"x": 0.0}, "card 1": {"x": 0.0}, "card 2": {"x": -1.0}}
    assert stragglers(figures, tolerance=0.10) == []


def test_metrics_are_reported_in_name_order_and_each_against_its_own_siblings():
    figures = {f"card {i}": {"b_gb_s": 10.0, "a_gb_s": 10.0} for i in range(3)}
    figures["card 1"]["b_gb_s"] = 5.0
    figures["card 2"]["a_gb_s"] = 5.0
    found = stragglers(figures, tolerance=0.10)
    assert [(s.metric, s.member) for s in found] == [("a_gb_s", "card 2"), ("b_gb_s", "card 1")]


def test_the_shortfall_and_its_description():
    slow = Straggler("card 0 -> card 5", "p2p_gb_s", 30.0, 40.0)
    assert slow.shortfall == pytest.approx(0.25)
    assert slow.describe() == ("card 0 -> card 5: p2p_gb_s 30 is 25% below the median of its "
                               "siblings (40)")


@given(st.lists(st.floats(1.0, 1e6), min_size=2, max_size=8), st.floats(0.0, 0.9))
def test_whoever_is_named_is_more_than_the_tolerance_below_the_others(values, tolerance):
    figures = {f"card {i}": {"x": v} for i, v in enumerate(values)}
    for found in stragglers(figures, tolerance):
        assert found.shortfall > tolerance
        assert found.value == figures[found.member]["x"]


@given(st.lists(st.floats(1.0, 1e6), min_size=2, max_size=8), st.floats(0.0, 0.9),
       st.floats(0.1, 10.0))
def test_the_verdict_does_not_depend_on_the_unit(values, tolerance, scale):
    """GB/s or MB/s: the same cards are named (a relative rule)."""
    def named(factor):
        figures = {f"card {i}": {"x": v * factor} for i, v in enumerate(values)}
        return [s.member for s in stragglers(figures, tolerance)]

    scaled = named(scale)
    original = named(1.0)
    # rounding can move a card sitting exactly on the edge; away from it they agree
    edge = [i for i, v in enumerate(values)
            if any(abs(v - (1 - tolerance) * w) <= 1e-9 * w for w in values)]
    if not edge:
        assert scaled == original


def test_figures_below_one_are_judged_like_any_other():
    """TFLOP/s of a small matmul, fractions of a limit: a median under 1 is still a median."""
    figures = {f"card {i}": {"roofline_fraction": 0.5} for i in range(4)}
    figures["card 2"]["roofline_fraction"] = 0.2
    assert [s.member for s in stragglers(figures, tolerance=0.10)] == ["card 2"]


def test_stand_ins_sharing_one_device_are_not_judged_as_siblings():
    from types import SimpleNamespace

    from pytest_ascend.box.siblings import shared_device
    from pytest_ascend.platforms import open_cards
    from pytest_ascend.platforms.selection import parse_card_selection

    stand_ins = open_cards("cpu", parse_card_selection("3"))
    assert shared_device(stand_ins) == (
        "the 3 selected cards are stand-ins sharing one cpu device: their figures differ only "
        "by the load on it, so no card or link is judged against its siblings; select real "
        "cards on an accelerator")
    assert shared_device(stand_ins[:1]) is None
    assert shared_device(stand_ins[:2]).startswith("the 2 selected cards are stand-ins")
    accelerator = SimpleNamespace(host_stand_ins=False)
    cards = [SimpleNamespace(platform=accelerator, kind="npu") for _ in range(2)]
    assert shared_device(cards) is None
    mixed = [*stand_ins[:1], SimpleNamespace(platform=accelerator, kind="npu")]
    assert shared_device(mixed[::-1]) is None  # the first card's platform decides
    assert "one cpu device" in shared_device([stand_ins[0], SimpleNamespace(
        platform=stand_ins[0].platform, kind="other")])
