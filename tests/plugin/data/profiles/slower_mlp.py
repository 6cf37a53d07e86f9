"""A pytest plugin (`-p slower_mlp`) planting a slower operator in the tiny model: every MLP
does eight extra matmuls of its down projection before its own work."""

import torch
from transformers.models.qwen2 import modeling_qwen2

_forward = modeling_qwen2.Qwen2MLP.forward


def _slower(self, x):
    weight = self.down_proj.weight
    for _ in range(8):
        torch.mm(weight, weight.t())
    return _forward(self, x)


modeling_qwen2.Qwen2MLP.forward = _slower
