"""How far two correct computations of one model may differ: the one table behind every
near-tie and log-probability bound in the suite.

Two paths that are both right (a padded batch and a single request, a reused prefix and
a full recompute, a split model and one card, a run and its golden) differ only by
rounding. That difference was measured on the built-in model on CPU against an exact
float32 run (docs/metrics.md, "Where B comes from"): max |Δ logprob| 0.095 in bfloat16,
0.016 in float16, 3e-6 in float32 on another summation order, at 4 layers, and growing
about as sqrt(layers) (0.080 / 0.095 / 0.228 in bfloat16 at 1 / 4 / 16 layers). The
bounds below stand 3-4x above those figures at the calibration depth and grow with depth
the same way. Two computations that are each within the rounding of an exact one can be
twice that apart, so a tighter table (bfloat16 0.2 at every depth, the batch-vs-single
margin this module replaced) called legitimate bfloat16 near-ties on a 48-layer model
failures.

Nothing here imports anything: model/ and numerics/ both read it.
"""

from __future__ import annotations

import math

# max |Δ logprob| over the top-k a correct path may show, per dtype, at CALIBRATION_LAYERS.
DLOGPROB_BOUND = {"float32": 1e-3, "float16": 5e-2, "bfloat16": 4e-1}
CALIBRATION_LAYERS = 4


def depth_factor(layers: int) -> float:
    """sqrt(layers / CALIBRATION_LAYERS), never below 1: the measured growth of rounding
    error with depth (a shallower model keeps the calibration bound)."""
    if layers < 1:
        raise ValueError(f"a model has at least one layer, got {layers}")
    return math.sqrt(max(1.0, layers / CALIBRATION_LAYERS))


def dlogprob_bound(*dtypes: str, layers: int, slack: float = 1.0) -> float:
    """max |Δ logprob| two correct computations in `dtypes` of a `layers`-deep model may
    show: the looser dtype decides (an fp16 run against an fp32 golden is fp16-limited),
    widened by `slack` (--ascend-golden-slack)."""
    if not dtypes:
        raise ValueError("name at least one dtype")
    unknown = [d for d in dtypes if d not in DLOGPROB_BOUND]
    if unknown:
        raise ValueError(f"no tolerance for dtype {unknown[0]!r}; known: "
                         f"{', '.join(DLOGPROB_BOUND)}")
    return max(DLOGPROB_BOUND[d] for d in dtypes) * depth_factor(layers) * slack


def tie_margin(*dtypes: str, layers: int, slack: float = 1.0) -> float:
    """The log-probability margin under which two tokens count as tied (the near-tie
    rule): the same as the dlogprob bound, since a pair of tokens closer than the rounding
    can move either of them may swap places in a correct run."""
    return dlogprob_bound(*dtypes, layers=layers, slack=slack)
