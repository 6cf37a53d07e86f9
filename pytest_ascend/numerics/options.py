"""The options of the golden comparison."""

from __future__ import annotations

from pytest_ascend import numbers
from pytest_ascend.options import OptionGroup, OptionSpec, path


NUMERICS_OPTIONS = OptionGroup("numerics against a golden", (
    OptionSpec(
        "golden",
        "--ascend-golden",
        "compare the run with the golden outputs in DIR (greedy tokens, top-k logprobs, "
        "perplexity), recorded by `pytest-ascend golden record --out DIR` from the same model",
        metavar="DIR",
        is_path=True,
        final=path,
    ),
    OptionSpec(
        "golden_slack",
        "--ascend-golden-slack",
        "multiply the golden comparison's dtype-derived bounds by FACTOR (docs/metrics.md), "
        "for a model whose rounding was measured to need it",
        default="1",
        metavar="FACTOR",
        parse=numbers.positive_factor,
    ),
))
