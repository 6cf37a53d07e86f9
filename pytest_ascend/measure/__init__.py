"""Measuring on the device: timed generation (TTFT, TPOT, ITL, E2E), the roofline it is held
against, memory figures, and the order statistics they are summarised with. Nothing here
knows pytest.

`from pytest_ascend.measure import measure_generation` is the notebook entry point; it is
imported on first use so that `pytest_ascend.measure.stats` (used by the history tool) does
not pull in torch.
"""

from importlib import import_module
from typing import Any

__all__ = ["measure_generation", "GenerationMeasurer", "GenerationResult"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(import_module("pytest_ascend.measure.generation"), name)
    raise AttributeError(f"module 'pytest_ascend.measure' has no attribute {name!r}")
