"""A model split across cards: tensor-parallel greedy decode, one rank per card.

    torchrun --nproc-per-node 2 -m pytest_ascend.box.tensor_parallel \
        --model /models/Qwen2.5-14B-Instruct --dtype float16 --out tp.json

Each rank binds to the card of its LOCAL_RANK and joins the platform's torch.distributed
backend *before* the model loads: transformers 5 maps cpu to gloo and cuda to nccl but has
no entry for npu (transformers/distributed/utils.py, DISTRIBUTED_BACKEND_MAP), and an
initialised process group is used as it is. The checkpoint then loads with the model's own
tensor-parallel plan (`tp_plan="auto"`: q/k/v and the MLP's gate/up split by columns,
o_proj and down_proj by rows, so every layer ends in one all-reduce).

The job does what the single-card suite does, on the split model: the suite's one greedy
definition (model.greedy, eos an ordinary token) with the logits each token was chosen from,
for the comparison with single-card greedy; then the timed decode loop of
measure.generation, and the card's copy bandwidth, for TPOT and the roofline fraction per
card. Rank 0 writes the JSON and the logits; every rank reports its own card.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Optional, Sequence

from pytest_ascend.box.launch import end_rank, join_job, under_torchrun
from pytest_ascend.model.prompts import SEED_PROMPTS, chat_prompt

# A short answer and a long one: enough steps for TPOT, and two chances to diverge.
DEFAULT_PROMPT_KEYS = ("qa_ai", "long_continuation")


# transformers splits a checkpoint by its `tp_plan` from 4.50 (documented from 4.49 as
# `from_pretrained(tp_plan="auto")`; earlier releases take the keyword for a config field and
# fail loading, an OSError on 4.45), over DTensor and DeviceMesh, which torch made public in
# torch.distributed.tensor in 2.5.
TP_TRANSFORMERS = "4.50"
TP_TORCH = "2.5"


def tensor_parallel_unsupported() -> Optional[str]:
    """Why this stack cannot split a model with transformers' tensor parallel, in one line
    naming the installed and the needed versions, or None when it can."""
    import torch
    import transformers
    from packaging.version import Version

    missing = []
    try:
        from torch.distributed.tensor import DTensor  # noqa: F401  (public from torch 2.5)
    except ImportError:
        missing.append(f"torch >= {TP_TORCH} (DTensor; installed {torch.__version__})")
    if Version(transformers.__version__) < Version(TP_TRANSFORMERS):
        missing.append(f"transformers >= {TP_TRANSFORMERS} (from_pretrained tp_plan; "
                       f"installed {transformers.__version__})")
    if not missing:
        return None
    return f"tensor parallel through tp_plan needs {' and '.join(missing)}"


def seed_chat_prompts(tokenizer: Any, keys: Sequence[str]) -> list[str]:
    """The seed prompts `keys` in the model's chat template: what both sides of the
    single-card comparison generate from."""
    return [chat_prompt(tokenizer, SEED_PROMPTS[key]) for key in keys]


def _arguments(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="torchrun --nproc-per-node N -m pytest_ascend.box.tensor_parallel",
        description="Greedy decode of a model split across N cards (tensor parallel): tokens "
                    "and logits for the comparison with one card, TPOT and the roofline "
                    "fraction per card, written as JSON by rank 0.")
    parser.add_argument("--model", required=True, type=Path, help="checkpoint directory")
    parser.add_argument("--prompt-keys", default=",".join(DEFAULT_PROMPT_KEYS),
                        help="comma-separated seed prompts (model.prompts.SEED_PROMPTS), each "
                             "in the model's chat template")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--out", required=True, type=Path, help="JSON file rank 0 writes "
                        "(the logits go beside it, as OUT.logits.pt)")
    parser.add_argument("--dtype", default="float16", choices=("float16", "bfloat16", "float32"))
    parser.add_argument("--device", default="auto",
                        help="platform kind, or auto (the first present)")
    parser.add_argument("--passes", type=int, default=3, help="timed passes over the prompts")
    parser.add_argument("--trust-remote-code", action="store_true")
    parser.add_argument("--card-indices", default=None,
                        help="comma-separated: the launcher's index of each local rank's "
                             "card, in rank order (launch.RankLayout.card_indices), so each "
                             "rank reports its card as the caller numbers it (default: "
                             "LOCAL_RANK)")
    args = parser.parse_args(argv)
    unknown = [key for key in args.prompt_keys.split(",") if key not in SEED_PROMPTS]
    if unknown:
        parser.error(f"--prompt-keys: unknown {', '.join(unknown)}; use "
                     f"{', '.join(SEED_PROMPTS)}")
    if args.new_tokens < 2 or args.passes < 1:
        parser.error("need --new-tokens >= 2 (TPOT needs a decode step) and --passes >= 1")
    if args.card_indices is not None:
        indices = args.card_indices.split(",")
        if not all(i.strip().isdigit() for i in indices) or len(indices) != int(
                os.environ.get("LOCAL_WORLD_SIZE", len(indices))):
            parser.error("--card-indices: give one card index per rank of this node, such "
                         "as 1,3")
    if not under_torchrun():
        parser.error("run under torchrun (RANK, WORLD_SIZE and LOCAL_RANK are not set)")
    return args


def _load(args: argparse.Namespace) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from pytest_ascend.model.hf_compat import (
        DTYPE_KWARG,
        TORCH_DTYPES,
        quiet_progress_bars,
        tensor_parallel_kwargs,
    )

    with quiet_progress_bars():
        tokenizer = AutoTokenizer.from_pretrained(args.model,
                                                  trust_remote_code=args.trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(
            args.model, trust_remote_code=args.trust_remote_code,
            **{DTYPE_KWARG: TORCH_DTYPES[args.dtype]}, **tensor_parallel_kwargs())
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model.eval(), tokenizer


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _arguments(argv)
    unsupported = tensor_parallel_unsupported()
    if unsupported is not None:
        print(f"tensor_parallel: {unsupported}", file=sys.stderr)
        return 2
    import torch
    import torch.distributed as dist

    from pytest_ascend.measure.generation import measure_generation
    from pytest_ascend.measure.roofline import (
        measure_device_limits,
        model_cost,
        roofline_metrics,
    )
    from pytest_ascend.model.greedy import greedy_generate

    job = join_job(args.device)
    rank, ranks, platform, card = job.rank, job.ranks, job.platform, job.card
    index = (int(args.card_indices.split(",")[job.local_rank])
             if args.card_indices is not None else card.index)
    new_tokens = args.new_tokens
    say = (lambda line: print(f"tensor_parallel: {line}", file=sys.stderr, flush=True)) \
        if rank == 0 else (lambda line: None)
    started = time.perf_counter()
    model, tokenizer = _load(args)
    prompts = seed_chat_prompts(tokenizer, args.prompt_keys.split(","))
    say(f"loaded {args.model} across {ranks} ranks in {time.perf_counter() - started:.1f} s")
    greedy = greedy_generate(model, tokenizer, prompts, new_tokens, ignore_eos=True)
    say(f"greedy: {len(prompts)} prompts x {new_tokens} tokens")
    limits = measure_device_limits(card, args.dtype)
    result = measure_generation(model, tokenizer, prompts, max_new_tokens=new_tokens,
                                device=card, repetitions=args.passes)
    share = model_cost(model, tp_size=ranks)  # this card's weights and KV heads
    mine = {"rank": rank, "card": card.name, "index": index,
            "weight_bytes": share.weight_bytes_per_step,
            "bandwidth_gb_s": limits.bandwidth_bytes_per_s / 1e9,
            "roofline_fraction": roofline_metrics(share, limits,
                                                  result.runs)["roofline_fraction"]}
    cards: list = [None] * ranks
    dist.all_gather_object(cards, mine)
    if rank == 0:
        _write(args.out, {
            "tp_size": ranks, "backend": dist.get_backend(), "device_kind": platform.kind,
            "dtype": args.dtype, "max_new_tokens": new_tokens,
            "prompt_keys": args.prompt_keys.split(","),
            "tokens": [g.tokens for g in greedy], "cards": cards,
            "metrics": result.summary().metrics(), "rounds": result.round_figures(),
            "seconds": time.perf_counter() - started,
        }, {"logits": torch.stack([g.logits for g in greedy])})
        say(f"TPOT {result.summary().tpot_ms.p50:.2f} ms at TP {ranks}")
    end_rank(0)  # exits


def logits_path(out: Path) -> Path:
    return out.with_name(out.name + ".logits.pt")


def _write(out: Path, report: dict, tensors: dict) -> None:
    import torch

    torch.save(tensors, logits_path(out))
    partial = out.with_name(out.name + ".part")
    partial.write_text(json.dumps(report, indent=1))
    os.replace(partial, out)


if __name__ == "__main__":
    sys.exit(main())
