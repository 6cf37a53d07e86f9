"""What differs between the transformers releases the suite meets (4.x on Ascend images,
5.x on fresh machines), decided by feature, in one place."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
import transformers
from packaging.version import Version
from transformers.utils import logging as hf_logging

TORCH_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}

# from_pretrained took `torch_dtype=` until 4.56, which added `dtype=`; 5.x dropped the old one.
DTYPE_KWARG = "dtype" if Version(transformers.__version__) >= Version("4.56") else "torch_dtype"


@contextmanager
def quiet_progress_bars() -> Iterator[None]:
    """Loading and saving a checkpoint draws tqdm bars into the test log; keep them out."""
    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()
