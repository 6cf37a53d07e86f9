"""Why a model's logits are NaN or inf: the answer decides what the user must do.

Qwen2-family models overflow in float16 (the answer reads '!!!!'), and bfloat16 is the cure.
The same symptom from a checkpoint whose weights already hold NaN (a bad conversion, a cut
download) or from a float32 run has nothing to do with the dtype: telling that user to switch
to bfloat16 sends them the wrong way.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

REDUCED_RANGE_DTYPES = ("float16",)  # a max near 65504: activations of large models overflow


def nonfinite_parameters(model: Any) -> list[tuple[str, int]]:
    """(name, count) of every parameter or buffer holding NaN or inf, in model order."""
    found = []
    tensors = [*model.named_parameters(), *model.named_buffers()]
    with torch.inference_mode():
        for name, tensor in tensors:
            if tensor.is_floating_point():
                bad = int((~torch.isfinite(tensor)).sum())
                if bad:
                    found.append((name, bad))
    return found


def diagnose_nonfinite_logits(model: Any, dtype: str, prompts: Sequence[str]) -> str:
    """One message for NaN/inf logits on `prompts` in `dtype`, naming the likely cause."""
    where = f"NaN/inf logits in {dtype} on prompts {list(prompts)}"
    broken = nonfinite_parameters(model)
    if broken:
        first, count = broken[0]
        return (f"{where}: the weights themselves hold NaN/inf ({len(broken)} tensor(s), first "
                f"{first} with {count} value(s)); the checkpoint is damaged, not the dtype: "
                f"convert or copy it again and check its files")
    if dtype in REDUCED_RANGE_DTYPES:
        return (f"{where}: the weights are finite, so the activations overflowed {dtype}'s "
                f"range (Qwen2-family models do; the answer reads '!!!!'); rerun with "
                f"--ascend-dtype bfloat16")
    return (f"{where}: the weights are finite and {dtype} does not overflow here, so a "
            f"kernel of this stack computed wrong values; compare with a golden "
            f"(--ascend-golden) or another stack")
