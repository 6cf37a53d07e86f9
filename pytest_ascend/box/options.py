"""The options of the whole-box run: how far a card may fall below its siblings, where figures go."""

from __future__ import annotations

from pytest_ascend import numbers
from pytest_ascend.options import OptionGroup, OptionSpec, path


BOX_OPTIONS = OptionGroup("the whole box", (
    OptionSpec(
        "card_tolerance",
        "--ascend-card-tolerance",
        "fail a card (or link) whose figure is more than this fraction below the median of "
        "its siblings",
        default=0.10,
        metavar="FRACTION",
        parse=numbers.fraction,
    ),
    OptionSpec(
        "box_name",
        "--ascend-box-name",
        "the name this box goes by in `pytest-ascend fleet` (recorded as the run's "
        "ascend.box; default: the host name pytest-benchmark records), for boxes whose "
        "host name is not theirs: a pod's, or several stand-in boxes on one host",
        metavar="NAME",
    ),
    OptionSpec(
        "report_dir",
        "--ascend-report-dir",
        "directory for the box run's figures: the card table and link matrix as JSON, the "
        "link heat map as PNG",
        metavar="DIR",
        is_path=True,
        final=path,
    ),
))
