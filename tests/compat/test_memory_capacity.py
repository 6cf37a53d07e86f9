"""The weights take the memory their size says, in the dtype asked for.

A model silently kept in float32 when float16 was asked, or loaded twice, shows up here
before it shows up as a mysterious out-of-memory in a long benchmark.
"""

import pytest

from pytest_ascend.measure.load_footprint import cpu_load_footprint
from pytest_ascend.model.arithmetic import DTYPE_BYTES

pytestmark = pytest.mark.npu

# On a CPU the only figure is the process's resident set. Measured in a fresh interpreter
# (pytest_ascend.measure.memory), loading adds the weights plus 4-10 MiB of per-load process state
# (config objects, safetensors headers, allocator arenas) on this project's CI machines, so
# the bound is 10% plus a fixed 16 MiB. The lower bound is exact: weights must be resident.
CPU_FIXED_OVERHEAD = 16 * 2**20


def test_weights_occupy_parameters_times_dtype_bytes(
    model_under_test, npu_device, ascend_settings, record_property
):
    expected = model_under_test.parameters * DTYPE_BYTES[model_under_test.dtype]
    if npu_device.platform.has_device_memory:
        used = model_under_test.memory_after.allocated - model_under_test.memory_before.allocated
        upper = 1.10 * expected
    else:
        free = npu_device.memory().free
        if 1.5 * expected > free:
            pytest.skip(
                f"measuring needs a second copy of the weights in host memory: "
                f"{1.5 * expected / 2**30:.1f} GiB wanted, {free / 2**30:.1f} GiB free"
            )
        used = cpu_load_footprint(
            model_under_test.path, model_under_test.dtype, ascend_settings.trust_remote_code
        )
        upper = 1.10 * expected + CPU_FIXED_OVERHEAD
    record_property("weights_expected_bytes", expected)
    record_property("weights_measured_bytes", used)
    assert 0.90 * expected <= used <= upper, (
        f"loading {model_under_test.name} in {model_under_test.dtype} took {used / 2**20:.1f} MiB "
        f"({npu_device.memory_source}); {model_under_test.parameters:,} parameters x "
        f"{DTYPE_BYTES[model_under_test.dtype]} bytes = {expected / 2**20:.1f} MiB"
    )
