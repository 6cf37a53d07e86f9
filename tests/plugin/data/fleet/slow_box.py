"""A pytest plugin (`-p slow_box`) that makes one Slurm task a slow box: in the task whose
SLURM_PROCID is PYTEST_ASCEND_SLOW_TASK, every forward pass of the tiny model waits 40 ms
first (an injected delay: a box with a slower card)."""

import os
import time

from transformers.models.qwen2 import modeling_qwen2

if os.environ.get("SLURM_PROCID") == os.environ.get("PYTEST_ASCEND_SLOW_TASK"):
    _forward = modeling_qwen2.Qwen2ForCausalLM.forward

    def _slower(self, *args, **kwargs):
        time.sleep(0.04)
        return _forward(self, *args, **kwargs)

    modeling_qwen2.Qwen2ForCausalLM.forward = _slower
