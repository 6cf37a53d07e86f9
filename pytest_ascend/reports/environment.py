"""Versions and hardware facts: what a result was measured on.

A benchmark is only comparable with another taken on the same stack, so every run records
the host, the packages and the device platform's own facts (on npu: CANN, driver, firmware,
chip; on cuda: the CUDA runtime and driver), plus the environment variables that change
device behaviour (on npu the launch queue, inf/nan mode, operator init, core binding, HCCL
determinism: the platform's `recorded_env_vars`). `timing_caveat` says when the run's
timings do not measure the device (ASCEND_LAUNCH_BLOCKING=1): the history does not compare
such a run. The keys are the same on every device kind: every registered platform's fact
keys are present, None where unknown, and a fact that cannot be read is None, never an
exception.
"""

from __future__ import annotations

import os
import platform
from typing import Any

from pytest_ascend.platforms import all_platforms
from pytest_ascend.platforms.facts import (
    cpu_model_name,
    package_version,
    parse_key_values,
    safe,
)

PACKAGES = ("torch", "transformers", "tokenizers", "sglang", "pytest_ascend")
HOST_ENV_VARS = ("OMP_NUM_THREADS",)
# Facts of the host rather than of the stack under test: pytest-benchmark's machine_info has
# its own, so the report's `ascend` block leaves them out.
HOST_KEYS = ("memory_source", "os", "os_release", "machine", "cpu", "cpu_count", "memory_total")


def gather_environment(device: Any) -> dict[str, Any]:
    """All facts for `device` (a DeviceUnderTest); keys are the same for every device kind."""
    device_platform = device.platform
    platforms = all_platforms()
    env: dict[str, Any] = {
        "device_kind": device.kind,
        "device_name": device.name,
        "device_count": safe(device_platform.device_count),
        "device_memory_total": safe(lambda: device.memory().total),
        "memory_source": device.memory_source,
    }
    env.update({name: package_version(name) for name in PACKAGES})
    env.update(
        python=platform.python_version(),
        os=f"{platform.system()} {platform.release()}",
        os_release=safe(_os_pretty_name),
        machine=platform.machine(),
        cpu=safe(cpu_model_name),
        cpu_count=os.cpu_count(),
        memory_total=safe(_host_memory_total),
    )
    env.update({key: None for each in platforms for key in each.fact_keys})
    facts = device_platform.facts(device)
    env.update({key: facts.get(key) for key in device_platform.fact_keys})
    recorded = {*HOST_ENV_VARS, *(name for each in platforms for name in _env_vars_of(each))}
    env["env_vars"] = {k: v for k, v in sorted(os.environ.items()) if _matches(k, recorded)}
    env["timing_caveat"] = safe(device_platform.timing_caveat)
    return env


def _env_vars_of(device_platform: Any) -> list[str]:
    names = list(device_platform.recorded_env_vars)
    if device_platform.visible_devices_env:
        names.append(device_platform.visible_devices_env)
    return names


def _matches(name: str, recorded: set[str]) -> bool:
    return name in recorded or any(
        pattern.endswith("*") and name.startswith(pattern[:-1]) for pattern in recorded
    )


def _host_memory_total() -> int:
    import psutil

    return int(psutil.virtual_memory().total)


def _os_pretty_name() -> str:
    with open("/etc/os-release") as fh:
        return parse_key_values(fh.read()).get("PRETTY_NAME", "").strip('"')
