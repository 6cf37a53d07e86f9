"""The CPU footprint of loading a checkpoint, measured in a fresh interpreter.

On a CPU there is no allocator to ask how much the weights take, only the process's resident
set, and inside a long-lived session that figure mixes the weights with whatever the process
freed and reused or imported lazily on the first load. So `cpu_load_footprint` runs
`python -m pytest_ascend.measure.load_footprint PATH DTYPE` (this module's `main`), which
imports everything and builds the model class on the meta device first (lazy imports happen
there, not inside the measured window), then loads, touches every parameter (safetensors
maps weights lazily; untouched pages are not resident), and prints the growth of the
resident set as JSON. The helper dies with its parent (pytest_ascend.processes).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional, Sequence

from pytest_ascend.processes import run_helper


def cpu_load_footprint(path: Path, dtype: str, trust_remote_code: bool = False) -> int:
    """Bytes the process's resident set grows by when loading `path` in `dtype` on the CPU."""
    cmd = [sys.executable, "-m", "pytest_ascend.measure.load_footprint", str(path), dtype]
    if trust_remote_code:
        cmd.append("--trust-remote-code")
    done = run_helper(cmd, timeout_s=3600)
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"measuring the CPU load footprint of {path} failed: {tail}")
    return int(json.loads(done.stdout.strip().splitlines()[-1])["rss_growth"])


def _measure_in_this_process(path: str, dtype: str, trust_remote_code: bool) -> int:
    import gc

    import psutil
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from pytest_ascend.model.hf_compat import (
        DTYPE_KWARG,
        TORCH_DTYPES,
        quiet_progress_bars,
    )

    config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    with torch.device("meta"):
        AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)
    torch.ones(8).sum()  # start the CPU runtime's thread pool outside the window
    gc.collect()
    process = psutil.Process()
    before = process.memory_info().rss
    with quiet_progress_bars():
        model = AutoModelForCausalLM.from_pretrained(
            path, trust_remote_code=trust_remote_code, **{DTYPE_KWARG: TORCH_DTYPES[dtype]}
        )
    with torch.no_grad():
        for param in model.parameters():
            param.sum()
    return process.memory_info().rss - before


def main(argv: Optional[Sequence[str]] = None) -> int:
    """`PATH DTYPE [--trust-remote-code]`: print {"rss_growth": bytes} for loading PATH."""
    args = list(sys.argv[1:] if argv is None else argv)
    growth = _measure_in_this_process(args[0], args[1], "--trust-remote-code" in args)
    print(json.dumps({"rss_growth": growth}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
