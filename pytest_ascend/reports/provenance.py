"""Where a result comes from: the report header, and the `ascend` block that pytest-benchmark's
machine_info, the JSON report's environment and the results log carry.

A benchmark number is only comparable with one taken on the same stack, and pytest-benchmark's
own machine_info knows nothing of accelerators, CANN or the model; the `ascend` block is what
lets a history group runs by CANN version and keep smoke runs apart from hardware results.
"""

from __future__ import annotations

from typing import Any, Optional

from pytest_ascend.platforms.facts import package_version
from pytest_ascend.reports.environment import HOST_KEYS


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
            *device.platform.stack_versions(),
            ("transformers", package_version("transformers")),
        )
    )
    golden = [] if plan.golden is None else [
        f"pytest-ascend: numerics compared with the {plan.golden.describe()} "
        f"({plan.golden.directory}), bounds x{settings.golden_slack:g}"]
    return [
        f"pytest-ascend: device {device.torch_device} ({device.name}) | "
        f"dtype {plan.dtype} ({plan.dtype_source}) | model {model} | draft {draft}",
        f"pytest-ascend: {versions}",
        f"pytest-ascend: {len(plan.cards)} card{'s' if len(plan.cards) != 1 else ''} "
        f"(--ascend-devices {settings.devices.text}): "
        + "; ".join(_card_text(card) for card in plan.card_facts),
        *golden,
        *(f"pytest-ascend: placement: {line}"
          for line in (plan.placement.lines() if plan.placement is not None else ())),
        *([] if plan.timing_caveat is None else [
            f"pytest-ascend: WARNING {plan.timing_caveat}; performance is reported, not "
            f"asserted, and the history does not compare this run"]),
    ]


def _card_text(card: dict) -> str:
    details = [card["name"]]
    if card["memory_total"]:
        details.append(f"{card['memory_total'] / 2**30:.1f} GiB")
    if card["bus_id"]:
        details.append(f"bus {card['bus_id']}")
    return f"{card['index']} {', '.join(details)}"


def ascend_block(
    plan: Any, environment: dict[str, Any], model: Optional[Any], limits: Optional[Any],
    sglang_server: Optional[dict] = None,
) -> dict[str, Any]:
    """The run's provenance: device, stack versions, model, dtype, smoke flag, device limits
    and the SGLang server tested, and the placement plan (`pytest-ascend plan --json`'s form).

    `model` is the loaded ModelUnderTest (None when no test loaded it: then only the spec is
    known); `limits` the measured DeviceLimits and `sglang_server` the server's own account
    of itself (None when no test needed them).
    """
    block = {key: value for key, value in environment.items() if key not in HOST_KEYS}
    block.update(
        model=model.name if model is not None else plan.settings.model,
        model_path=str(model.path) if model is not None else None,
        parameters=model.parameters if model is not None else None,
        weight_bytes=model.weight_bytes if model is not None else None,
        dtype=plan.dtype,
        smoke=plan.smoke,
        cards=plan.card_facts,
        device_limits=limits.report() if limits is not None else None,
        sglang_server=sglang_server,
        placement=plan.placement.to_json() if plan.placement is not None else None,
    )
    if plan.settings.box_name:
        block["box"] = plan.settings.box_name
    return block
