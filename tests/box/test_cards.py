"""Every selected card, one by one: matmul against float64, copy bandwidth each way, matmul
rate, an HBM pattern check; then every card against its siblings in one interleaved sweep.

Each figure is a pytest-benchmark benchmark with `card` in extra_info, so `pytest-ascend
history` follows each card across CANN versions, and a line in the results log."""

import math

import pytest
import torch

from pytest_ascend.box.card_checks import (
    COPY_DIRECTIONS,
    COPY_METRICS,
    MATMUL_METRIC,
    box_sizes,
    copy_bandwidth_kernel,
    matmul_accuracy,
    matmul_not_applicable,
)
from pytest_ascend.box.memory_patterns import check_memory_patterns
from pytest_ascend.box.render import write_box_json
from pytest_ascend.box.siblings import shared_device, stragglers
from pytest_ascend.box.sweep import sweep_cards
from pytest_ascend.measure.roofline import matmul_kernel

pytestmark = pytest.mark.npu

ROUNDS = 10


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32], ids=str)
def test_matmul_matches_float64(ascend_card, dtype, record_property):
    reason = matmul_not_applicable(ascend_card, dtype)
    if reason is not None:
        pytest.skip(f"card {ascend_card.index}: {reason}")
    accuracy = matmul_accuracy(ascend_card, dtype)
    record_property("card", ascend_card.index)
    record_property("relative_error", accuracy.error)
    assert accuracy.ok, (
        f"card {ascend_card.index} ({ascend_card.name}): {dtype} matmul "
        + ("produced inf/NaN" if not accuracy.finite else
           f"relative error {accuracy.error:.3g} exceeds {accuracy.bound:.3g}"))


def _benchmark_kernel(benchmark, card, kernel, metric, scale, **extra):
    kernel.warm_up()
    benchmark.pedantic(kernel.run_once, rounds=ROUNDS, iterations=1)
    value = kernel.rate() / scale
    benchmark.extra_info.update(
        card=card.index, card_name=card.name, **{metric: value}, **extra,
        rounds={metric: [kernel.work / (ms / 1e3) / scale for ms in kernel.times_ms]})
    assert math.isfinite(value) and value > 0, f"card {card.index}: {metric} = {value}"
    return value


def _not_above_datasheet(card, value, sheet_value, what):
    sheet = card.platform.datasheet(card.name)
    if sheet is not None and sheet.official and sheet_value(sheet):
        # A figure above the vendor's peak means the timing is wrong (e.g. unsynchronized).
        assert value <= sheet_value(sheet) * 1.05, (
            f"card {card.index}: {what} {value:.1f} above the datasheet's "
            f"{sheet_value(sheet):.1f}")


@pytest.mark.parametrize("direction", COPY_DIRECTIONS)
def test_copy_bandwidth(benchmark, ascend_card, ascend_plan, direction):
    copy_bytes, _ = box_sizes(ascend_card, ascend_plan.dtype)
    kernel = copy_bandwidth_kernel(ascend_card, direction, copy_bytes)
    gb_s = _benchmark_kernel(benchmark, ascend_card, kernel, COPY_METRICS[direction], 1e9,
                             bytes=copy_bytes)
    if direction == "d2d":
        _not_above_datasheet(ascend_card, gb_s, lambda s: s.bandwidth_gb_s, "copy GB/s")


def test_matmul_rate(benchmark, ascend_card, ascend_plan):
    _, size = box_sizes(ascend_card, ascend_plan.dtype)
    kernel = matmul_kernel(ascend_card, ascend_plan.dtype, size)
    tflops = _benchmark_kernel(benchmark, ascend_card, kernel, MATMUL_METRIC, 1e12,
                               dtype=ascend_plan.dtype, matmul_size=size)
    _not_above_datasheet(ascend_card, tflops, lambda s: s.tflops.get(ascend_plan.dtype),
                         f"{ascend_plan.dtype} TFLOPS")


def test_memory_patterns(ascend_card, ascend_progress, record_property):
    report = check_memory_patterns(ascend_card)
    record_property("card", ascend_card.index)
    record_property("bytes_checked", report.bytes_checked)
    record_property("mismatches", report.mismatches)
    ascend_progress(f"card {ascend_card.index}: {report.bytes_checked / 2**30:.2f} GiB x 5 "
                    f"patterns checked in {report.seconds:.1f} s")
    assert report.bytes_checked > 0, f"card {ascend_card.index}: no memory could be allocated"
    assert report.ok, report.describe()


def test_no_card_is_slower_than_its_siblings(ascend_cards, ascend_plan, ascend_box,
                                             ascend_progress, record_property):
    if len(ascend_cards) < 2:
        pytest.skip(f"one card selected (--ascend-devices {ascend_plan.settings.devices.text}):"
                    f" no siblings to compare with; select more with --ascend-devices all")
    if shared_device(ascend_cards):
        pytest.skip(shared_device(ascend_cards))
    sweep = sweep_cards(ascend_cards, ascend_plan.dtype, progress=ascend_progress)
    slow = stragglers(sweep.by_label(), ascend_plan.settings.card_tolerance)
    ascend_box.sweep, ascend_box.slow_cards = sweep, slow
    record_property("figures", sweep.figures)
    if ascend_plan.settings.report_dir is not None:
        write_box_json(ascend_plan.settings.report_dir / "box.json", sweep, ascend_box.links)
    assert not slow, (
        f"{len(slow)} figure(s) more than {ascend_plan.settings.card_tolerance:.0%} below "
        f"their siblings: " + "; ".join(s.describe() for s in slow))
