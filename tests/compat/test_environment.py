"""The run knows what it ran on: a result without its CANN / driver / torch_npu versions
cannot be compared with the next night's."""

import json

import pytest

pytestmark = pytest.mark.npu

COMMON = ("device_kind", "device_name", "device_memory_total", "torch", "transformers",
          "tokenizers", "python", "os", "cpu", "cpu_count", "memory_total")
PER_DEVICE = {
    "npu": ("torch_npu", "cann", "driver", "firmware", "npu_chip", "device_count"),
    "cuda": ("cuda", "cuda_driver", "device_count"),
    "cpu": (),
}


# Where each fact comes from, for the failure message: in containers these are often unmapped.
SOURCES = {
    "cann": "torch_npu get_cann_version or ascend_toolkit_install.info under $ASCEND_HOME_PATH",
    "driver": "/usr/local/Ascend/driver/version.info (mount it into the container)",
    "firmware": "/usr/local/Ascend/firmware/version.info (mount it into the container)",
    "npu_chip": "`npu-smi info` on PATH",
    "cuda_driver": "`nvidia-smi` on PATH",
}


def test_environment_block_is_complete(ascend_env, npu_device):
    required = COMMON + PER_DEVICE[npu_device.kind]
    missing = [key for key in required if ascend_env.get(key) is None]
    assert not missing, f"environment facts missing on {npu_device.kind}: " + "; ".join(
        f"{key} (from {SOURCES[key]})" if key in SOURCES else key for key in missing
    )
    assert ascend_env["device_kind"] == npu_device.kind
    assert ascend_env["device_name"] == npu_device.name


def test_environment_has_the_same_keys_on_every_device(ascend_env):
    every_key = set(COMMON).union(*PER_DEVICE.values()) | {"sglang", "env_vars"}
    assert every_key <= set(ascend_env), f"absent keys: {sorted(every_key - set(ascend_env))}"
    json.dumps(ascend_env)  # it goes into reports as it is
