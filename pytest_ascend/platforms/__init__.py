"""The devices the suite runs on: one module per platform, found through a registry.

Built in: `npu` (Ascend, torch_npu + CANN), `cuda` (NVIDIA), `cpu`. An out-of-tree package
adds a platform without touching this project by naming its `Platform` subclass under the
entry point group `pytest_ascend.platforms`, the entry point's name being the platform's
kind (the `--ascend-device` value)::

    [project.entry-points."pytest_ascend.platforms"]
    xpu = "my_package.xpu_platform:XpuPlatform"

Listing the kinds reads entry point names only and imports nothing, so `--ascend-device`'s
choices cost no import in sessions that never use the plugin; a platform's module is
imported when the session needs it, and a broken one is a one-line error then.
"""

from __future__ import annotations

from importlib import import_module, metadata
from typing import TYPE_CHECKING, Optional

from pytest_ascend.errors import one_line
from pytest_ascend.platforms.base import DatasheetPeak, DeviceUnavailable, Platform

if TYPE_CHECKING:
    from pytest_ascend.platforms.device import DeviceUnderTest
    from pytest_ascend.platforms.selection import CardSelection

__all__ = ["DatasheetPeak", "DeviceUnavailable", "Platform", "all_platforms",
           "choose_platform", "get_platform", "open_cards", "platform_names", "resolve_device"]

ENTRY_POINT_GROUP = "pytest_ascend.platforms"
_BUILTIN = {
    "npu": "pytest_ascend.platforms.npu:NpuPlatform",
    "cuda": "pytest_ascend.platforms.cuda:CudaPlatform",
    "cpu": "pytest_ascend.platforms.cpu:CpuPlatform",
}


def _entry_points() -> dict[str, str]:
    """name -> "module:attribute" of every platform other packages register."""
    found = metadata.entry_points()
    group = (found.select(group=ENTRY_POINT_GROUP) if hasattr(found, "select")
             else found.get(ENTRY_POINT_GROUP, ()))  # Python 3.9's dict of groups
    return {ep.name: ep.value for ep in group}


def _registry(entry_points: Optional[dict[str, str]] = None) -> dict[str, str]:
    registry = dict(_BUILTIN)
    for name, target in (_entry_points() if entry_points is None else entry_points).items():
        registry.setdefault(name, target)
    return registry


def platform_names() -> tuple[str, ...]:
    """Every platform's kind, built-in ones first; imports nothing."""
    return tuple(_registry())


def get_platform(kind: str) -> Platform:
    """The platform of `kind` (a new, stateless instance), its module imported on first use."""
    entry_points = _entry_points()
    registry = _registry(entry_points)
    if kind not in registry:
        raise DeviceUnavailable(f"unknown device kind {kind!r}: use one of "
                                f"{', '.join(registry)}")
    target = registry[kind]
    clash = entry_points.get(kind)
    if kind in _BUILTIN and clash is not None and clash != target:
        raise DeviceUnavailable(
            f"platform {kind!r} is built in, and the entry point {ENTRY_POINT_GROUP} also "
            f"names it ({clash}); give that platform another name")
    module_name, _, attribute = target.partition(":")
    try:
        platform_class = getattr(import_module(module_name), attribute)
        platform = platform_class()
    except Exception as exc:
        raise DeviceUnavailable(
            f"platform {kind!r} ({target}, entry point group {ENTRY_POINT_GROUP}) failed to "
            f"load: {one_line(exc)}; fix or uninstall the package providing it"
        ) from exc
    if not isinstance(platform, Platform) or platform.kind != kind:
        raise DeviceUnavailable(
            f"platform {kind!r} ({target}) is not a pytest_ascend Platform of kind {kind!r}")
    return platform


def all_platforms() -> list[Platform]:
    """Every registered platform, in the order --ascend-device auto tries them."""
    return sorted((get_platform(kind) for kind in platform_names()),
                  key=lambda platform: platform.auto_priority)


def resolve_device(choice: str) -> "DeviceUnderTest":
    """The device for an `--ascend-device` value: a platform's kind, or auto, which opens the
    first platform present (npu, then cuda, then cpu among the built-in ones).

    Under auto, a present platform that fails to open is an error, never a quiet fall-back
    to the next one: a broken CANN must not turn into a green CPU run.
    """
    return choose_platform(choice).open(under_auto=choice == "auto")


def open_cards(choice: str, selection: "CardSelection") -> tuple["DeviceUnderTest", ...]:
    """The selected cards of the chosen platform, opened, in the order of the selection.

    Card 0 is opened first in every case: its failure says why the platform cannot be used
    at all, which is the error to show before any complaint about indices.
    """
    platform = choose_platform(choice)
    first = platform.open(0, under_auto=choice == "auto")
    return tuple(first if index == 0 else platform.open(index)
                 for index in selection.resolve(platform))


def choose_platform(choice: str) -> Platform:
    """The platform of an `--ascend-device` value: the kind named, or under auto the first
    present."""
    if choice != "auto":
        return get_platform(choice)
    for platform in all_platforms():
        if platform.present():
            return platform
    raise DeviceUnavailable("no platform is present, not even the cpu")
