"""SGLang's own serving benchmark, run on the server the suite tests, to cross-check the suite's
load generator against the tool the SGLang project measures itself with.

It runs from the server's Python (`--sglang-python`) as a helper process of its own, with
the random dataset that needs no download: `random-ids` with `--tokenize-prompt`, which
sends token ids of exactly the requested input length (plain `random` fetches ShareGPT from
the hub). The flags below were read in sglang 0.5.23's `sglang/benchmark/serving.py`:
`--backend sglang` posts to the native `/generate`; eos is ignored unless
`--disable-ignore-eos`; arrivals are Poisson at `--request-rate`; each run appends one JSON
line to `--output-file`, whose keys (`median_ttft_ms`, `median_tpot_ms`,
`request_throughput`, `output_throughput`, `completed`, ...) are those the suite's own
summary uses.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from pytest_ascend.errors import one_line
from pytest_ascend.processes import run_helper

# Newest first: 0.5.x moved the module; `sglang.bench_serving` remains as a deprecated alias.
MODULES = ("sglang.benchmark.serving", "sglang.bench_serving")


class BenchServingError(RuntimeError):
    """bench_serving did not produce a result; the message says why in one line."""


def find_module(python: str) -> Optional[str]:
    """The bench_serving module importable from `python`, or None."""
    probe = ("import importlib.util, sys\n"
             "for name in sys.argv[1:]:\n"
             "    try:\n"
             "        found = importlib.util.find_spec(name)\n"
             "    except ImportError:\n"
             "        found = None\n"
             "    if found:\n"
             "        print(name)\n"
             "        break\n")
    try:
        done = run_helper([python, "-c", probe, *MODULES], timeout_s=120)
    except OSError:
        return None
    name = done.stdout.strip()
    return name if done.returncode == 0 and name in MODULES else None


def run_bench_serving(python: str, module: str, *, base_url: str, model_dir: str,
                      input_len: int, output_len: int, range_ratio: float, rate: float,
                      prompts: int, seed: int, output_file: Path,
                      max_concurrency: Optional[int] = None,
                      timeout_s: float = 900.0) -> dict:
    """One bench_serving run on the server at `base_url`; its JSON record."""
    argv = [python, "-m", module, "--backend", "sglang", "--base-url", base_url,
            "--model", model_dir, "--tokenizer", model_dir,
            "--dataset-name", "random-ids", "--tokenize-prompt",
            "--random-input-len", str(input_len), "--random-output-len", str(output_len),
            "--random-range-ratio", str(range_ratio), "--num-prompts", str(prompts),
            "--request-rate", str(rate), "--seed", str(seed),
            "--warmup-requests", "0", "--disable-tqdm", "--output-file", str(output_file)]
    if max_concurrency:
        argv += ["--max-concurrency", str(max_concurrency)]
    before = _lines(output_file)
    try:
        done = run_helper(argv, timeout_s=timeout_s)
    except OSError as exc:
        raise BenchServingError(f"cannot run {python}: {exc.strerror}") from None
    except Exception as exc:  # the helper is already stopped (run_helper's promise)
        raise BenchServingError(f"bench_serving did not finish: {one_line(exc)}") from None
    records = _lines(output_file)[len(before):]
    if done.returncode != 0 or not records:
        tail = (done.stderr or done.stdout).strip().splitlines()
        raise BenchServingError(f"bench_serving exited with {done.returncode} and no result: "
                                f"{tail[-1] if tail else '(no output)'}")
    return json.loads(records[-1])


def _lines(path: Path) -> list:
    try:
        return [line for line in path.read_text().splitlines() if line.strip()]
    except OSError:
        return []
