"""A pytest plugin (`-p slower_mlp`) planting a slower operator in the tiny model: every MLP
does eight extra 256 x 256 matmuls before its own work (milliseconds a decode step, far above
what a shared machine's load does to any one operator)."""

import torch
from transformers.models.qwen2 import modeling_qwen2

_forward = modeling_qwen2.Qwen2MLP.forward
_SQUARE = torch.randn(256, 256)


def _slower(self, x):
    for _ in range(8):
        torch.mm(_SQUARE, _SQUARE)
    return _forward(self, x)


modeling_qwen2.Qwen2MLP.forward = _slower
