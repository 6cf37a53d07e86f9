"""The soak's options: how long, and how far a card's rate may drift from its first minutes
(how far below its siblings is the box's --ascend-card-tolerance)."""

from __future__ import annotations

from pytest_ascend import numbers
from pytest_ascend.options import OptionGroup, OptionSpec
from pytest_ascend.soak.duration import parse_soak_duration

SOAK_OPTIONS = OptionGroup("the soak", (
    OptionSpec(
        "soak",
        "--ascend-soak",
        "run the soak (tests/box/test_soak.py) for this long on every selected card at once: "
        "the model's greedy decode, a large matmul and HBM patterns, every output checked "
        "bit for bit; a duration (90s, 15m, 4h) or a level: quick (2m), standard (15m), "
        "long (4h)",
        metavar="DURATION",
        parse=parse_soak_duration,
    ),
    OptionSpec(
        "soak_drift",
        "--ascend-soak-drift",
        "flag a card whose rate moves more than this fraction from its own first minute "
        "during the soak",
        default=0.10,
        metavar="FRACTION",
        parse=numbers.fraction,
    ),
))
