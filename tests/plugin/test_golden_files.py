"""A golden is written for other users to read, and a disk that fills up while writing it
is one clear line: the CLI's 'internal error' is for bugs, not for a full disk."""

import os
import stat
import subprocess
import sys

import torch

from pytest_ascend.numerics.golden import Golden, GoldenPrompt, read_golden, write_golden

WRITE_IN_A_CHILD = """
import resource, signal, sys, torch
from pathlib import Path
from pytest_ascend.numerics.golden import GoldenError
sys.path.insert(0, {tests!r})
from test_golden_files import synthetic_golden, write_golden

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
try:
    write_golden(synthetic_golden(), Path({out!r}))
except (GoldenError, OSError) as exc:
    print("CLEAR:", type(exc).__name__, exc)
"""


def synthetic_golden() -> Golden:
    """A golden of the real layout, large enough (~1 MB of tensors) to overflow a limit."""
    generator = torch.Generator().manual_seed(0)
    logprobs = torch.randn(64, 2048, generator=generator, dtype=torch.float64).log_softmax(-1)
    top = logprobs.topk(20, dim=1)
    full = {0: logprobs[0].clone(), 63: logprobs[63].clone()}
    prompt = GoldenPrompt("p0", [1, 2, 3], list(range(64)), top.indices.contiguous(),
                          top.values.contiguous(), full)
    manifest = {"format": "pytest-ascend-golden", "version": 1, "dtype": "float32", "top_k": 20,
                "model": {"name": "synthetic", "fingerprint": {"sha256": "0" * 64}},
                "prompts": [{"name": "p0", "new_tokens": 64, "full_positions": [0, 63],
                             "prompt_ids": [1, 2, 3], "tokens": list(range(64))}]}
    return Golden(None, manifest, (prompt,))


def test_every_file_of_a_golden_is_readable_by_other_users(tmp_path):
    out = write_golden(synthetic_golden(), tmp_path / "golden")
    for name in ("golden.json", "golden.safetensors"):
        mode = stat.S_IMODE(os.stat(out / name).st_mode)
        assert mode & stat.S_IROTH and mode & stat.S_IRGRP, f"{name} has mode {oct(mode)}"
    assert read_golden(out).prompts[0].top_ids.shape == (64, 20)


def test_a_disk_that_fills_while_writing_the_tensors_is_a_clear_error(tmp_path):
    out = tmp_path / "golden"
    done = subprocess.run(
        [sys.executable, "-c", WRITE_IN_A_CHILD.format(tests=os.path.dirname(__file__),
                                                       out=str(out))],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("CLEAR: OSError"), done.stdout + done.stderr[-2000:]
    assert "File too large" in done.stdout
    assert not any(out.iterdir()), "a half-written golden was left behind"
