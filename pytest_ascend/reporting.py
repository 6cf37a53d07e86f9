"""What a run says about itself: the report header (and, later, benchmark machine_info and
JSON-report metadata), built from the session plan and the environment facts."""

from __future__ import annotations

from typing import Any

from pytest_ascend.environment import cann_version, package_version


def header_lines(plan: Any) -> list[str]:
    """Two lines naming what this run measures; a smoke run says so in words."""
    device, settings = plan.device, plan.settings
    if plan.smoke:
        model = f"{settings.model} (built-in tiny model: smoke run, not a hardware result)"
    else:
        model = settings.model
    draft = settings.draft_model or "none"
    versions = " | ".join(
        f"{label} {value or '-'}"
        for label, value in (
            ("torch", package_version("torch")),
            ("torch_npu", package_version("torch_npu")),
            ("CANN", cann_version() if device.kind == "npu" else None),
            ("transformers", package_version("transformers")),
        )
    )
    return [
        f"pytest-ascend: device {device.torch_device} ({device.name}) | "
        f"dtype {plan.dtype} ({plan.dtype_source}) | model {model} | draft {draft}",
        f"pytest-ascend: {versions}",
    ]
