"""Collectives through torch.distributed, one rank per card, as HCCL Test and nccl-tests
run them: every result checked exactly, bandwidth per size as algbw and busbw.

    torchrun --nproc-per-node 8 -m pytest_ascend.box.collectives --out collectives.json

Each rank binds to the card of its LOCAL_RANK and joins the platform's backend (hccl on npu:
`import torch_npu` registers it; nccl on cuda; gloo on cpu, where every rank shares the
host). The same module spans machines with torchrun's --nnodes / --rdzv-endpoint.

Figures follow nccl-tests (doc/PERFORMANCE.md): a size is the whole array, the output of
all_gather and the input of reduce_scatter; algbw = size / time; busbw = algbw x 2(n-1)/n for
all_reduce, x (n-1)/n for all_gather, reduce_scatter and all_to_all, x 1 for broadcast, which
makes busbw comparable with a link's bandwidth whatever n is. Time is the slowest rank's
(nccl-tests averages the ranks by default; a collective is over when its last rank is).

Checks: inputs are small integers, so every sum is exact in float32, float16 and bfloat16,
and each output is compared for equality with its expected value, after the timed loop.
Rank 0 writes the JSON after each operation (`complete` turns true at the end), so a run
that dies keeps what it measured. An operation the backend lacks (gloo's all_gather and
reduce_scatter before torch 2.2) is not run: `skipped` names it with the reason, and a job
asked for every operation (a fleet's) still completes.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, NoReturn, Optional, Sequence

from pytest_ascend.box.launch import end_rank, join_job, under_torchrun

OPERATIONS = ("all_reduce", "all_gather", "reduce_scatter", "broadcast", "all_to_all")
# gloo gained all_gather_into_tensor and reduce_scatter_tensor in torch 2.2 (pytorch PR
# #112144: "no support for _allgather_base in Gloo process group" before it).
GLOO_NEEDS_TORCH_2_2 = ("all_gather", "reduce_scatter")


def operation_unsupported(operation: str, backend: str,
                          torch_version: Optional[str] = None) -> Optional[str]:
    """Why `operation` cannot run on `backend` with this torch, or None. HCCL and NCCL have
    every operation; gloo (the CPU's) lacks two before torch 2.2."""
    from packaging.version import Version

    import torch

    version = Version(torch_version or torch.__version__)
    if backend == "gloo" and operation in GLOO_NEEDS_TORCH_2_2 and version.release < (2, 2):
        return (f"{operation} on gloo (the CPU's backend) needs torch >= 2.2 (this is torch "
                f"{version})")
    return None


def plan_operations(requested: Sequence[str], backend: str,
                    torch_version: Optional[str] = None) -> tuple[list[str], dict[str, str]]:
    """The requested operations this backend runs, in order, and those it cannot with the
    reason: a job asked for everything (a fleet's) runs what it can and says what it left."""
    run, skipped = [], {}
    for operation in requested:
        reason = operation_unsupported(operation, backend, torch_version)
        if reason:
            skipped[operation] = reason
        else:
            run.append(operation)
    return run, skipped


def supported_operations(backend: str) -> tuple[str, ...]:
    return tuple(plan_operations(OPERATIONS, backend)[0])


_SUFFIX = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def bus_factor(operation: str, ranks: int) -> float:
    """busbw / algbw for `operation` among `ranks` (nccl-tests' definitions)."""
    if operation == "all_reduce":
        return 2 * (ranks - 1) / ranks
    if operation == "broadcast":
        return 1.0
    return (ranks - 1) / ranks


def parse_size(text: str) -> int:
    """`8`, `8K`, `64M`, `1G` (binary units) in bytes."""
    match = re.fullmatch(r"\s*(\d+)\s*([KMG]?)I?B?\s*", text.upper())
    if not match or int(match.group(1)) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size such as 8, 8K, 64M or 1G")
    return int(match.group(1)) * _SUFFIX[match.group(2)]


def sizes(min_bytes: int, max_bytes: int, factor: int) -> list[int]:
    """min_bytes, min_bytes x factor, ... up to max_bytes (as nccl-tests' -b -e -f)."""
    found, size = [], min_bytes
    while size <= max_bytes:
        found.append(size)
        size *= factor
    return found


@dataclass(frozen=True)
class SizeResult:
    operation: str
    bytes: int  # the whole array, as nccl-tests counts it
    count: int  # elements of that array
    time_us: float  # per call, the slowest rank's
    algbw_gb_s: float
    busbw_gb_s: float
    correct: bool
    mismatch: Optional[str]  # the first wrong element, where one was


def _pattern(count: int, scale: float, dtype: Any, device: Any) -> Any:
    """scale x (1, 2, 3, 4, 5, 1, 2, ...): small integers, exact in every dtype used."""
    import torch

    return ((torch.arange(count, device=device) % 5 + 1) * scale).to(dtype)


def _first_mismatch(output: Any, expected: Any) -> Optional[str]:
    import torch

    if torch.equal(output, expected):
        return None
    wrong = torch.nonzero(output != expected).flatten()
    index = int(wrong[0])
    return (f"element {index} of {output.numel()}: {float(output[index])} instead of "
            f"{float(expected[index])} ({wrong.numel()} wrong)")


class Collective:
    """One operation at one size on this rank: its buffers, a call, and its check."""

    def __init__(self, operation: str, count: int, rank: int, ranks: int, dtype: Any,
                 device: Any) -> None:
        import torch
        import torch.distributed as dist

        self.operation, self.count = operation, count
        chunk = count // ranks
        half_sum = ranks * (ranks + 1) / 2  # sum of (rank + 1) over ranks
        if operation == "all_reduce":
            self.input = _pattern(count, rank + 1, dtype, device)
            self.expected = _pattern(count, half_sum, dtype, device)
            self.output = self.input
            self.call: Callable[[], Any] = lambda: dist.all_reduce(self.output)
        elif operation == "all_gather":
            self.input = _pattern(chunk, rank + 1, dtype, device)
            self.output = torch.empty(chunk * ranks, dtype=dtype, device=device)
            self.expected = torch.cat([_pattern(chunk, r + 1, dtype, device)
                                       for r in range(ranks)])
            # all_gather_single from torch 2.13 on; Ascend images pin older torch
            gather = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor
            self.call = lambda: gather(self.output, self.input)
        elif operation == "reduce_scatter":
            self.input = _pattern(chunk * ranks, rank + 1, dtype, device)
            self.output = torch.empty(chunk, dtype=dtype, device=device)
            self.expected = _pattern(chunk * ranks, half_sum, dtype, device)[
                rank * chunk:(rank + 1) * chunk]
            # reduce_scatter_single from torch 2.13 on; Ascend images pin older torch
            scatter = getattr(dist, "reduce_scatter_single", None) or dist.reduce_scatter_tensor
            self.call = lambda: scatter(self.output, self.input)
        elif operation == "broadcast":
            self.expected = _pattern(count, 1, dtype, device)
            self.input = self.expected.clone() if rank == 0 else torch.zeros_like(self.expected)
            self.output = self.input
            self.call = lambda: dist.broadcast(self.output, src=0)
        elif operation == "all_to_all":
            # the chunk for rank j from rank i holds (i * ranks + j + 1) x pattern
            self.input = torch.cat([_pattern(chunk, rank * ranks + j + 1, dtype, device)
                                    for j in range(ranks)])
            self.output = torch.empty_like(self.input)
            self.expected = torch.cat([_pattern(chunk, i * ranks + rank + 1, dtype, device)
                                       for i in range(ranks)])
            self.call = lambda: dist.all_to_all_single(self.output, self.input)
        else:
            raise ValueError(f"unknown operation {operation!r}: use {', '.join(OPERATIONS)}")
        self.pristine = self.input.clone()

    def check(self) -> Optional[str]:
        """Run once from fresh inputs and compare: the timed loop leaves in-place results
        (all_reduce, broadcast) summed over and over."""
        self.input.copy_(self.pristine)
        self.call()
        return _first_mismatch(self.output, self.expected)


def element_count(operation: str, nbytes: int, element_size: int, ranks: int) -> int:
    """Elements of a `nbytes` array for `operation`: a multiple of `ranks` where the array
    is split among them; 0 when `nbytes` is too small for that."""
    count = nbytes // element_size
    if operation in ("all_gather", "reduce_scatter", "all_to_all"):
        count -= count % ranks
    return count


def _slowest(seconds: float, device: Any) -> float:
    import torch
    import torch.distributed as dist

    value = torch.tensor([seconds], dtype=torch.float32, device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return float(value.item())


def measure(operation: str, nbytes: int, card: Any, rank: int, ranks: int, dtype: Any,
            warmup: int, iterations: int) -> Optional[SizeResult]:
    """One size of one operation: warm-up, the timed calls, then the exact check."""
    import torch
    import torch.distributed as dist

    element_size = torch.empty(0, dtype=dtype).element_size()
    count = element_count(operation, nbytes, element_size, ranks)
    if count == 0:
        return None
    collective = Collective(operation, count, rank, ranks, dtype, card.torch_device)
    for _ in range(warmup):
        collective.call()
    dist.barrier()
    with card.timer() as timing:
        for _ in range(iterations):
            collective.call()
    seconds = _slowest(timing.elapsed_ms / 1e3 / iterations, card.torch_device)
    mismatch = collective.check()
    wrong_anywhere = _slowest(1.0 if mismatch else 0.0, card.torch_device) > 0
    size = count * element_size
    algbw = size / seconds / 1e9
    return SizeResult(operation, size, count, seconds * 1e6, algbw,
                      algbw * bus_factor(operation, ranks), not wrong_anywhere, mismatch)


def _arguments(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="torchrun --nproc-per-node N -m pytest_ascend.box.collectives",
        description="Collectives on every rank's card: exact checks, algbw and busbw per "
                    "size, written as JSON by rank 0.")
    parser.add_argument("--out", required=True, type=Path, help="JSON file rank 0 writes")
    parser.add_argument("--ops", default=",".join(OPERATIONS),
                        help=f"comma-separated, of {', '.join(OPERATIONS)} (default: all)")
    parser.add_argument("--min-bytes", "-b", type=parse_size, default=8, metavar="SIZE")
    parser.add_argument("--max-bytes", "-e", type=parse_size, default=1 << 30,
                        metavar="SIZE")
    parser.add_argument("--factor", "-f", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--dtype", default="float32",
                        choices=("float32", "float16", "bfloat16"))
    parser.add_argument("--device", default="auto",
                        help="platform kind, or auto (the first present)")
    args = parser.parse_args(argv)
    unknown = [op for op in args.ops.split(",") if op not in OPERATIONS]
    if unknown:
        parser.error(f"--ops: unknown {', '.join(unknown)}; use {', '.join(OPERATIONS)}")
    if args.factor < 2 or args.min_bytes > args.max_bytes:
        parser.error("need --factor >= 2 and --min-bytes <= --max-bytes")
    if not under_torchrun():
        parser.error("run under torchrun (RANK, WORLD_SIZE and LOCAL_RANK are not set)")
    return args


def _write(path: Path, report: dict) -> None:
    partial = path.with_name(path.name + ".part")
    partial.write_text(json.dumps(report, indent=1))
    os.replace(partial, path)


def main(argv: Optional[Sequence[str]] = None) -> NoReturn:
    args = _arguments(argv)
    import torch
    import torch.distributed as dist

    job = join_job(args.device)
    rank, ranks, platform, card = job.rank, job.ranks, job.platform, job.card
    dtype = getattr(torch, args.dtype)
    report: dict = {
        "backend": dist.get_backend(), "device_kind": platform.kind,
        "device_name": card.name, "world_size": ranks,
        "nodes": ranks // int(os.environ.get("LOCAL_WORLD_SIZE", ranks)),
        "dtype": args.dtype, "warmup": args.warmup, "iterations": args.iters,
        "results": [], "complete": False,
    }
    operations, report["skipped"] = plan_operations(args.ops.split(","), report["backend"])
    if rank == 0:
        for operation, reason in report["skipped"].items():
            print(f"collectives: {operation} skipped: {reason}", file=sys.stderr, flush=True)
    started = time.perf_counter()
    for operation in operations:
        for nbytes in sizes(args.min_bytes, args.max_bytes, args.factor):
            result = measure(operation, nbytes, card, rank, ranks, dtype, args.warmup,
                             args.iters)
            if result is not None:
                report["results"].append(asdict(result))
        if rank == 0:
            done = [r for r in report["results"] if r["operation"] == operation]
            print(f"collectives: {operation} done, {len(done)} sizes, peak busbw "
                  f"{max((r['busbw_gb_s'] for r in done), default=0):.3g} GB/s",
                  file=sys.stderr, flush=True)
            _write(args.out, report)
    report["complete"] = True
    report["seconds"] = time.perf_counter() - started
    if rank == 0:
        _write(args.out, report)
    end_rank(0 if all(r["correct"] for r in report["results"]) else 1)


if __name__ == "__main__":
    main()
