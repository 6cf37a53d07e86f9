"""The device's copy bandwidth and matmul rate: the roofline every fraction refers to, kept
as benchmarks so a history shows a driver that lost bandwidth, and checked against the
vendor's datasheet where one exists."""

import pytest

from pytest_ascend.measure.roofline import copy_kernel, matmul_kernel

pytestmark = pytest.mark.npu

ROUNDS = 10


@pytest.mark.parametrize("limit", ["copy_bandwidth", "matmul_rate"])
def test_device_limit(benchmark, device_limits, npu_device, ascend_plan, limit):
    if limit == "copy_bandwidth":
        kernel = copy_kernel(npu_device, device_limits.copy_bytes)
        sheet, unit, scale = device_limits.datasheet_bandwidth_bytes_per_s, "gb_s", 1e9
    else:
        kernel = matmul_kernel(npu_device, ascend_plan.dtype, device_limits.matmul_size)
        sheet, unit, scale = device_limits.datasheet_flops_per_s, "tflops", 1e12
    kernel.warm_up()
    benchmark.pedantic(kernel.run_once, rounds=ROUNDS, iterations=1)
    rate = kernel.rate()
    benchmark.extra_info.update({
        f"{limit}_{unit}": rate / scale,
        f"datasheet_{unit}": None if sheet is None else sheet / scale,
        "vs_datasheet": None if sheet is None else rate / sheet,
        "dtype": ascend_plan.dtype,
    })

    assert rate > 0
    if sheet is not None and device_limits.datasheet.official:
        # A measurement above the vendor's peak means the timing is wrong (e.g. unsynchronized).
        assert rate <= sheet * 1.05, (
            f"{limit} measured {rate / scale:.1f} above the datasheet's {sheet / scale:.1f}"
        )
