"""pytest-ascend: validate and benchmark LLM inference on Ascend NPUs, CUDA GPUs and CPUs.

The public API is imported lazily so that loading the pytest plugin (every pytest run, even
`pytest --help`) does not import torch.
"""

from importlib import import_module
from typing import Any

__all__ = ["DeviceUnderTest", "MemorySnapshot", "resolve_device", "load_model",
           "measure_generation", "gather_environment"]

_LAZY = {
    "DeviceUnderTest": "pytest_ascend.platforms.device",
    "MemorySnapshot": "pytest_ascend.platforms.device",
    "resolve_device": "pytest_ascend.platforms",
    "load_model": "pytest_ascend.model.loading",
    "measure_generation": "pytest_ascend.measure.generation",
    "gather_environment": "pytest_ascend.reports.environment",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'pytest_ascend' has no attribute {name!r}")
