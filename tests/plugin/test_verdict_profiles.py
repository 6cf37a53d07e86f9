"""The profile diff's rules alone: which operator ranks first, what counts as unchanged,
stored profiles read back or refused by name, torch_npu's kernel_details.csv in CANN's
documented layout, and --ascend-profile's selection of tests as -k selects them."""

import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from pytest_ascend.profiling.capture import parse_selection, selected
from pytest_ascend.profiling.operators import (
    OperatorTime,
    Profile,
    from_kernel_details,
    from_key_averages,
    median_profile,
    rank_changes,
)

DATA = Path(__file__).parent / "data" / "profiles"


def table(**self_us):
    return {name: OperatorTime(1, us) for name, us in self_us.items()}


# The ranking ---------------------------------------------------------------------------------


def test_the_largest_change_in_microseconds_ranks_first():
    before = Profile("t", "device", table(MatMulV2=1000.0, RmsNorm=10.0, Cast=2.0))
    after = Profile("t", "device", table(MatMulV2=1310.0, RmsNorm=10.1, Cast=8.0))
    ranked = rank_changes(before, after)
    assert [c.name for c in ranked] == ["MatMulV2", "Cast", "RmsNorm"]
    assert ranked[0].describe() == "MatMulV2 +31% (+310.0 us)"
    assert ranked[1].relative == pytest.approx(3.0)  # +300%, yet second: 6 us
    assert ranked[2].unchanged and ranked[2].describe() == "RmsNorm unchanged"


def test_a_slower_operator_ranks_first_whichever_way_the_rest_moves():
    before = Profile("t", "device", table(a=100.0, b=100.0, c=100.0))
    after = Profile("t", "device", table(a=90.0, b=200.0, c=160.0))
    assert [c.name for c in rank_changes(before, after)] == ["b", "c", "a"]
    faster = Profile("t", "device", table(a=100.0, b=20.0, c=100.0))
    assert rank_changes(before, faster)[0].name == "b"


def test_operators_new_or_gone_are_ranked_and_named():
    before = Profile("t", "device", table(old=50.0, same=10.0))
    after = Profile("t", "device", table(new=70.0, same=10.0))
    ranked = rank_changes(before, after)
    assert [c.name for c in ranked] == ["new", "old", "same"]
    assert ranked[0].describe() == "new new (70.0 us)"
    assert ranked[1].describe() == "old gone (was 50.0 us)"


@pytest.mark.parametrize("before_us, after_us, unchanged", [
    (1000.0, 1049.0, True), (1000.0, 1051.0, False), (1000.0, 951.0, True),
    (1000.0, 949.0, False), (2.0, 2.9, True), (10.0, 11.1, False),
])
def test_unchanged_is_within_five_percent_or_one_microsecond(before_us, after_us, unchanged):
    (change,) = rank_changes(Profile("t", "d", table(op=before_us)),
                             Profile("t", "d", table(op=after_us)))
    assert change.unchanged is unchanged


def test_a_stored_profile_reads_back_and_a_broken_one_is_named():
    profile = Profile("torch.profiler", "host", table(mm=12.5, add=1.0), "profiles/x/trace")
    again = Profile.from_json(json.loads(json.dumps(profile.to_json())))
    assert again == profile and again.total_us == 13.5
    with pytest.raises(ValueError, match="'mm': needs calls and self_us"):
        Profile.from_json({"operators": {"mm": {"calls": 1}}})
    with pytest.raises(ValueError, match="'mm': -1.0 us"):
        Profile.from_json({"operators": {"mm": {"calls": 1, "self_us": -1}}})
    with pytest.raises(ValueError, match="no operators table"):
        Profile.from_json({"tool": "x"})


def test_kernel_details_in_cann_s_documented_layout_sum_by_operator_type():
    operators = from_kernel_details(DATA / "kernel_details.csv")
    assert operators["MatMulV2"] == OperatorTime(2, pytest.approx(812.40 + 790.05))
    assert operators["RmsNorm"] == OperatorTime(2, pytest.approx(6.12 + 6.08))
    assert set(operators) == {"MatMulV2", "RmsNorm", "Add", "SwiGlu"}


def test_kernel_details_without_its_columns_is_one_line(tmp_path):
    path = tmp_path / "kernel_details.csv"
    path.write_text("Name,Duration\nx,1\n")
    with pytest.raises(ValueError, match=r"no Type and Duration\(us\) columns \(has: Name, "):
        from_kernel_details(path)


# Selecting tests -----------------------------------------------------------------------------


@pytest.mark.parametrize("expression, chosen", [
    ("short_qa", True), ("SHORT", True), ("long_doc", False), ("perf and not long", True),
    ("single_request or nothing", True), ("not short_qa", False), ("npu", True),
])
def test_the_expression_matches_as_k_does(expression, chosen):
    names = ["tests", "perf", "test_single_request.py", "test_single_request_latency[short_qa]",
             "npu"]
    assert selected(expression, names) is chosen


def test_a_bad_expression_is_refused_when_read():
    with pytest.raises(ValueError, match="not an expression as -k takes"):
        parse_selection("short_qa and (")


def test_a_stored_profile_is_written_largest_first_in_microseconds():
    profile = Profile("torch.profiler", "host",
                      {"a_small": OperatorTime(2, 1.23456), "z_large": OperatorTime(1, 5.0)},
                      "t")
    stored = profile.to_json()
    assert stored == {"tool": "torch.profiler", "time_of": "host", "trace": "t", "unit": "us",
                      "operators": {"z_large": {"calls": 1, "self_us": 5.0},
                                    "a_small": {"calls": 2, "self_us": 1.235}}}
    assert list(stored["operators"]) == ["z_large", "a_small"]


def test_what_a_stored_profile_may_hold():
    zero = Profile.from_json({"operators": {"idle": {"calls": 0, "self_us": 0}}})
    assert zero == Profile("", "", {"idle": OperatorTime(0, 0.0)}, None)
    with pytest.raises(ValueError, match=r"^operator 'mm': 1.0 us in -1 calls$"):
        Profile.from_json({"operators": {"mm": {"calls": -1, "self_us": 1}}})
    with pytest.raises(ValueError, match=r"^operator 'mm': nan us in 1 calls$"):
        Profile.from_json({"operators": {"mm": {"calls": 1, "self_us": float("nan")}}})
    with pytest.raises(ValueError, match=r"^not a pytest-ascend profile \(no operators table\)$"):
        Profile.from_json(["operators"])


def test_kernel_details_with_a_byte_order_mark_and_type_first_are_read(tmp_path):
    path = tmp_path / "kernel_details.csv"
    path.write_bytes("Type,Duration(us)\nMatMulV2,10.5\nMatMulV2,1.5\n".encode("utf-8-sig"))
    assert from_kernel_details(path) == {"MatMulV2": OperatorTime(2, 12.0)}


@pytest.mark.parametrize("header, has", [("Type,Name\n", "Type, Name"),
                                         ("Duration(us),Name\n", "Duration(us), Name"),
                                         ("", "none")])
def test_kernel_details_need_both_columns(tmp_path, header, has):
    path = tmp_path / "kernel_details.csv"
    path.write_text(header)
    with pytest.raises(ValueError, match=rf"no Type and Duration\(us\) columns \(has: "
                                         rf"{re.escape(has)}\)$"):
        from_kernel_details(path)


def event(key, count, cpu_us, device_us=None, device_type="CPU", cuda_only=False):
    """One row of torch.profiler's key_averages(), as the table reads it (its device_type a
    torch DeviceType, named)."""
    fields = {"key": key, "count": count, "self_cpu_time_total": cpu_us,
              "device_type": SimpleNamespace(name=device_type)}
    if device_us is not None:
        fields["self_cuda_time_total" if cuda_only else "self_device_time_total"] = device_us
    return SimpleNamespace(**fields)


def test_the_host_s_own_time_where_the_host_is_the_device():
    rows = [event("aten::mm", 4, 100.0, 7.0), event("aten::add", 2, 0.0, 3.0),
            event("aten::view", 1, 0.5)]
    assert from_key_averages(rows, device=False) == {"aten::mm": OperatorTime(4, 100.0),
                                                     "aten::view": OperatorTime(1, 0.5)}


def test_the_device_time_of_each_host_operator_and_no_kernel_counted_twice():
    rows = [event("ampere_sgemm", 4, 0.0, 40.0, device_type="CUDA"),
            event("aten::mm", 4, 100.0, 40.0), event("aten::view", 9, 5.0, 0.0)]
    assert from_key_averages(rows, device=True) == {"aten::mm": OperatorTime(4, 40.0)}
    old_torch = [event("aten::mm", 3, 100.0, 30.0, cuda_only=True)]
    assert from_key_averages(old_torch, device=True) == {"aten::mm": OperatorTime(3, 30.0)}
    no_type = [SimpleNamespace(key="aten::mm", count=1, self_cpu_time_total=2.0)]
    assert from_key_averages(no_type, device=False) == {"aten::mm": OperatorTime(1, 2.0)}


def test_each_operator_is_its_median_over_the_profiled_calls():
    calls = [Profile("t", "host", table(mm=100.0, sdpa=10.0), "a"),
             Profile("t", "host", table(mm=104.0, sdpa=900.0, gc=5.0), "b"),  # a stall
             Profile("t", "host", {"mm": OperatorTime(3, 98.0), "sdpa": OperatorTime(1, 12.0)},
                     "c")]
    profile = median_profile(calls)
    assert profile.operators == {"mm": OperatorTime(1, 100.0), "sdpa": OperatorTime(1, 12.0),
                                 "gc": OperatorTime(0, 0.0)}
    assert (profile.tool, profile.time_of, profile.trace) == ("t", "host", "c")
