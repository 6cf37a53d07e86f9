"""The run knows what it ran on: a result without its CANN / driver / torch_npu versions
cannot be compared with the next night's."""

import json

import pytest

from pytest_ascend.platforms import all_platforms

pytestmark = pytest.mark.npu

COMMON = ("device_kind", "device_name", "device_memory_total", "torch", "transformers",
          "tokenizers", "python", "os", "cpu", "cpu_count", "memory_total")


def test_environment_block_is_complete(ascend_env, npu_device):
    # What the device's platform must know, with where each fact comes from: in containers
    # the version files and tools are often not mapped.
    required = npu_device.platform.required_facts
    missing = [key for key in (*COMMON, *required) if ascend_env.get(key) is None]
    assert not missing, f"environment facts missing on {npu_device.kind}: " + "; ".join(
        f"{key} (from {required[key]})" if key in required else key for key in missing
    )
    assert ascend_env["device_kind"] == npu_device.kind
    assert ascend_env["device_name"] == npu_device.name


def test_environment_has_the_same_keys_on_every_device(ascend_env):
    every_key = set(COMMON).union(
        *(p.fact_keys for p in all_platforms()), *(p.required_facts for p in all_platforms())
    ) | {"sglang", "env_vars"}
    assert every_key <= set(ascend_env), f"absent keys: {sorted(every_key - set(ascend_env))}"
    json.dumps(ascend_env)  # it goes into reports as it is
