"""The options that choose the device under test and its dtype."""

from __future__ import annotations

from pytest_ascend.model.arithmetic import DTYPE_BYTES
from pytest_ascend.options import OptionGroup, OptionSpec
from pytest_ascend.platforms import platform_names
from pytest_ascend.platforms.selection import parse_card_selection

DTYPE_CHOICES = tuple(DTYPE_BYTES)


DEVICE_OPTIONS = OptionGroup("device under test", (
    OptionSpec(
        "device",
        "--ascend-device",
        "device under test: a platform's kind, or auto for the first platform present "
        "(npu, then cuda, then cpu)",
        default="auto",
        choices=lambda: ("auto", *platform_names()),
    ),
    OptionSpec(
        "devices",
        "--ascend-devices",
        "cards to test: all, a number N (the first N), or indices such as 0,1,3 (one card: "
        "3,); the first selected card runs the model",
        default="1",
        metavar="all|N|i,j,...",
        parse=parse_card_selection,
    ),
    OptionSpec(
        "dtype",
        "--ascend-dtype",
        "model dtype",
        default_text="the platform's: float16 on npu/cuda; float32 on cpu, where float16 "
        "matmuls are ~100x slower",
        choices=DTYPE_CHOICES,
    ),
))
