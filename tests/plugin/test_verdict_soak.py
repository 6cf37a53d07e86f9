"""The soak's verdicts on synthetic records: bit-for-bit agreement (soak.agreement), stability
over time (soak.stability), the duration and the planted faults. Fast: no processes, no model;
these are the tests the mutation run judges those modules by."""

import pytest

from pytest_ascend.soak.agreement import AgreementCheck, Mismatch, first_differing_part
from pytest_ascend.soak.duration import LEVELS, describe_seconds, parse_soak_duration
from pytest_ascend.soak.stability import (MIN_POINTS, judge_stability, window_medians,
                                          window_seconds)
from pytest_ascend.soak.worker import Plant


def record(card, iteration, digest="d0", workload="matmul", parts=None, **extra):
    return {"card": card, "iteration": iteration, "workload": workload, "digest": digest,
            "parts": parts, "unit": "row", **extra}


# Agreement ---------------------------------------------------------------------------------

def test_identical_iterations_and_siblings_agree():
    check = AgreementCheck({0: "910B3", 1: "910B3"})
    for iteration in range(3):
        for card in (0, 1):
            assert check.add(record(card, iteration, parts=["a", "b"])) == []
    assert check.mismatches == []


def test_a_later_iteration_is_held_to_the_cards_own_first_and_named_where():
    check = AgreementCheck({0: "chip"})
    check.add(record(0, 0, "d0", parts=["a", "b"]))
    check.add(record(0, 1, "d0"))
    found = check.add(record(0, 2, "d1", difference="row 7, column 3: 1.0 instead of 2.0"))
    assert found == [Mismatch(0, 2, "matmul", "its own iteration 0",
                              "row 7, column 3: 1.0 instead of 2.0")]
    assert check.mismatches == found
    assert found[0].describe() == ("card 0, iteration 2, matmul: differs from its own "
                                   "iteration 0 at row 7, column 3: 1.0 instead of 2.0")


def test_without_a_located_difference_the_parts_name_it():
    check = AgreementCheck({0: "chip"})
    check.add(record(0, 0, "d0", parts=["a", "b", "c"]))
    found = check.add(record(0, 4, "d9", parts=["a", "x", "c"]))
    assert [m.where for m in found] == ["row 1"]


def test_a_card_whose_first_differs_from_its_sibling_is_named_against_it():
    check = AgreementCheck({0: "910B3", 1: "910B3", 2: "910B3"})
    check.add(record(0, 0, "d0", parts=["a", "b", "c"]))
    assert check.add(record(1, 0, "d0", parts=["a", "b", "c"])) == []
    found = check.add(record(2, 0, "d2", parts=["a", "b", "z"]))
    assert found == [Mismatch(2, 0, "matmul", "card 0 (the same chip, 910B3)", "row 2")]
    # its own later iterations are held to its own first: equal, so no more mismatches
    assert check.add(record(2, 1, "d2")) == []


def test_cards_of_different_chips_are_not_compared():
    check = AgreementCheck({0: "910B3", 1: "910B4"})
    check.add(record(0, 0, "d0"))
    assert check.add(record(1, 0, "d1")) == []


def test_workloads_are_compared_apart():
    check = AgreementCheck({0: "c", 1: "c"})
    check.add(record(0, 0, "m", workload="matmul"))
    check.add(record(0, 0, "x", workload="decode"))
    assert check.add(record(1, 0, "m", workload="matmul")) == []
    assert [m.workload for m in check.add(record(1, 0, "y", workload="decode"))] == ["decode"]
    assert check.add(record(0, 1, "x", workload="decode")) == []


def test_a_fault_is_a_mismatch_even_when_the_digest_repeats():
    check = AgreementCheck({0: "c"})
    check.add(record(0, 0, "ok", workload="hbm_patterns"))
    found = check.add(record(0, 1, "ok", workload="hbm_patterns",
                             fault="pattern zeros at byte offset 0xc0e4"))
    assert found == [Mismatch(0, 1, "hbm_patterns", "the values known to be right",
                              "pattern zeros at byte offset 0xc0e4")]


def test_a_fault_in_the_first_iteration_is_caught_and_is_not_the_reference():
    check = AgreementCheck({0: "c", 1: "c"})
    found = check.add(record(0, 0, "bad", fault="rows off their float64 reference"))
    assert [m.against for m in found] == ["the values known to be right"]
    assert check.add(record(0, 1, "good")) == []
    assert check.add(record(1, 0, "good")) == []
    assert check.add(record(0, 2, "good")) == []
    assert len(check.mismatches) == 1


@pytest.mark.parametrize("parts, reference, expected", [
    (["a", "b"], ["a", "c"], "row 1"),
    (["x", "b"], ["a", "b"], "row 0"),
    (["a", "b", "c"], ["a", "b"], "row 2 (one has 1 more)"),
    (["a"], ["a", "b", "c"], "row 1 (one has 2 more)"),
    (None, ["a"], "an unknown place (no per-part digests)"),
    (["a"], [], "an unknown place (no per-part digests)"),
])
def test_first_differing_part(parts, reference, expected):
    assert first_differing_part(parts, reference, "row") == expected


# Stability ---------------------------------------------------------------------------------

def steady(rate, seconds=60, every=1.0, start=0.0):
    return [(start + i * every, rate) for i in range(int(seconds / every))]


def test_window_seconds():
    assert window_seconds(3600) == 60
    assert window_seconds(30) == 5
    assert window_seconds(360) == 60


def test_window_medians_ignore_one_slow_iteration_and_thin_windows():
    points = [(0, 10), (1, 10), (2, 1), (3, 10), (10, 20), (11, 20), (12, 20), (20, 5), (21, 5)]
    assert window_medians(points, 10) == [(0, 10), (10, 20)]
    assert window_medians([(-1, 7), (-2, 7), (-3, 7), (1, 9)], 10) == [(-10, 7)]
    assert MIN_POINTS == 3


def test_a_steady_card_is_not_flagged():
    verdict = judge_stability({0: steady(100)}, {0: "c"}, window_s=10, drift=0.1,
                              tolerance=0.1)[0]
    assert verdict.flags == [] and verdict.baseline == 100 and verdict.worst_drift == 0
    assert verdict.below_siblings is None and verdict.median_rate == 100


def test_a_card_that_slows_after_its_first_minute_is_flagged_with_where():
    points = steady(100, 20) + steady(80, 40, start=20)
    verdict = judge_stability({0: points}, {0: "c"}, window_s=10, drift=0.1,
                              tolerance=0.1)[0]
    assert verdict.worst_drift == pytest.approx(-0.2)
    assert verdict.worst_window_s == 20
    assert verdict.flags == ["rate drifted -20.0% from its first 10 s (100 -> 80 at 20 s; "
                             "allowed 10%)"]


def test_a_card_that_speeds_up_has_drifted_too():
    points = steady(100, 10) + steady(125, 30, start=10)
    verdict = judge_stability({0: points}, {0: "c"}, window_s=10, drift=0.1,
                              tolerance=0.1)[0]
    assert verdict.worst_drift == pytest.approx(0.25)
    assert len(verdict.flags) == 1 and "+25.0%" in verdict.flags[0]


def test_the_worst_window_is_the_furthest_either_way():
    points = steady(100, 10) + steady(95, 10, start=10) + steady(125, 10, start=20) + \
        steady(70, 10, start=30)
    verdict = judge_stability({0: points}, {0: "c"}, window_s=10, drift=0.5,
                              tolerance=0.1)[0]
    assert verdict.worst_drift == pytest.approx(-0.3) and verdict.worst_window_s == 30
    assert verdict.flags == []


def test_drift_at_the_threshold_is_allowed_and_two_windows_are_enough():
    points = steady(100, 10) + steady(125, 10, start=10)
    verdict = judge_stability({0: points}, {0: "c"}, window_s=10, drift=0.25,
                              tolerance=0.1)[0]
    assert verdict.worst_drift == 0.25 and verdict.flags == []
    verdict = judge_stability({0: points}, {0: "c"}, window_s=10, drift=0.24,
                              tolerance=0.1)[0]
    assert verdict.flags == ["rate drifted +25.0% from its first 10 s (100 -> 125 at 10 s; "
                             "allowed 24%)"]


def test_too_few_windows_are_not_judged_and_say_so():
    verdict = judge_stability({0: steady(100, 9)}, {0: "c"}, window_s=10, drift=0.1,
                              tolerance=0.1)[0]
    assert verdict.baseline is None and verdict.worst_drift is None and verdict.flags == []
    assert verdict.notes == ["drift not judged: 1 window(s) of 10 s with 3+ iterations "
                             "(needs 2)"]


def test_a_slow_card_is_flagged_against_its_siblings_and_the_others_are_not():
    series = {0: steady(100), 1: steady(104), 2: steady(60), 3: steady(98)}
    chips = dict.fromkeys(series, "910B3")
    verdicts = judge_stability(series, chips, window_s=10, drift=0.1, tolerance=0.1)
    assert verdicts[2].below_siblings == pytest.approx(0.4)
    assert verdicts[2].flags == ["rate 60 is 40.0% below its siblings' median 100 "
                                 "(allowed 10%)"]
    assert all(verdicts[card].flags == [] for card in (0, 1, 3))
    assert verdicts[1].below_siblings == pytest.approx(1 - 104 / 98)


def test_siblings_are_the_same_chip_only():
    series = {0: steady(100), 1: steady(50)}
    verdicts = judge_stability(series, {0: "910B3", 1: "910B4"}, window_s=10, drift=0.1,
                               tolerance=0.1)
    assert verdicts[1].flags == [] and verdicts[1].below_siblings is None


def test_a_gap_at_the_tolerance_is_allowed():
    series = {0: steady(100), 1: steady(75)}
    verdicts = judge_stability(series, {0: "c", 1: "c"}, window_s=10, drift=0.1,
                               tolerance=0.25, what="decode tokens/s")
    assert verdicts[1].below_siblings == 0.25 and verdicts[1].flags == []
    verdicts = judge_stability(series, {0: "c", 1: "c"}, window_s=10, drift=0.1,
                               tolerance=0.24, what="decode tokens/s")
    assert verdicts[1].flags == ["decode tokens/s 75 is 25.0% below its siblings' median 100 "
                                 "(allowed 24%)"]
    assert [verdicts[card].card for card in (0, 1)] == [0, 1]


def test_a_card_with_no_points_is_reported_not_judged():
    verdicts = judge_stability({0: steady(100), 1: []}, {0: "c", 1: "c"}, window_s=10,
                               drift=0.1, tolerance=0.1)
    assert verdicts[1].median_rate is None and verdicts[1].below_siblings is None
    assert verdicts[0].below_siblings is None and verdicts[0].flags == []


# The duration and the planted faults --------------------------------------------------------

@pytest.mark.parametrize("text, seconds", [
    ("90s", 90), ("15m", 900), ("4h", 14400), ("30", 30), (" 1.5m ", 90), ("2H", 7200),
    ("quick", LEVELS["quick"]), ("Standard", 900), ("long", 14400)])
def test_soak_durations(text, seconds):
    assert parse_soak_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0s", "-5m", "forever", "5d", "1h30m"])
def test_bad_soak_durations_say_what_is_accepted(text):
    with pytest.raises(ValueError, match=r"use a duration such as 90s, 15m or 4h, or a "
                                         r"level: quick \(2m\), standard \(15m\), long \(4h\)"):
        parse_soak_duration(text)


@pytest.mark.parametrize("seconds, text", [(90, "1m30s"), (14400, "4h"), (0, "0s"),
                                           (3661, "1h1m1s"), (120, "2m")])
def test_describe_seconds(seconds, text):
    assert describe_seconds(seconds) == text


def test_plants():
    plant = Plant("corrupt=2:matmul, corrupt=0:decode,slow=0.25")
    assert plant.corrupts(2, "matmul") and plant.corrupts(0, "decode")
    assert not plant.corrupts(2, "decode") and not plant.corrupts(1, "matmul")
    assert plant.slow_s == 0.25
    assert Plant().slow_s == 0 and not Plant("").corrupts(0, "matmul")
    with pytest.raises(ValueError, match="unknown fault 'flip=1'"):
        Plant("flip=1")
