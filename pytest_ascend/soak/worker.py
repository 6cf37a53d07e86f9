"""One card's soak process: load the model onto the card, warm every workload up, say ready,
wait for the go (a line `go UNTIL` on stdin, UNTIL in epoch seconds, the same for every card),
then run the workloads in turn until UNTIL, appending one JSON line per workload per
iteration to --out, each written whole and flushed before the next starts.

    python -m pytest_ascend.soak.worker --card 1 --device npu --model DIR --dtype float16 \\
        --out soak/card-1.jsonl

The runner starts one per card (pytest_ascend.soak.runner); run by hand, it soaks one card.
It dies with its parent (a killed pytest takes it along), and a SIGTERM ends it at once:
every finished iteration is already on disk.

Determinism: the platform's `deterministic_env` is in the environment before the runtime
starts (the runner puts it there), torch.use_deterministic_algorithms(True) is on (with
warn_only, so that an operator without a deterministic implementation is named in the
`ready` line rather than stopping the soak), and the shapes never change. On a host
platform the thread count is fixed by the runner: a reduction split over another number
of threads sums in another order.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Optional, TextIO

from pytest_ascend.errors import one_line

PLANT_ENV = "PYTEST_ASCEND_SOAK_PLANT"  # the test hook: see `Plant`


class Plant:
    """Faults a test plants in one card's worker: `corrupt=ITERATION:WORKLOAD` (repeatable)
    flips one bit of that workload's output in that iteration; `slow=SECONDS` adds that much
    to every timed decode step. Read from PLANT_ENV, e.g. `corrupt=2:matmul,slow=0.01`."""

    def __init__(self, text: str = "") -> None:
        self.corrupt: set[tuple[int, str]] = set()
        self.slow_s = 0.0
        for item in filter(None, (part.strip() for part in text.split(","))):
            key, _, value = item.partition("=")
            if key == "corrupt":
                iteration, _, workload = value.partition(":")
                self.corrupt.add((int(iteration), workload))
            elif key == "slow":
                self.slow_s = float(value)
            else:
                raise ValueError(f"{PLANT_ENV}: unknown fault {item!r}; use corrupt=I:WORKLOAD "
                                 f"or slow=SECONDS")

    def corrupts(self, iteration: int, workload: str) -> bool:
        return (iteration, workload) in self.corrupt


class RecordFile:
    """The worker's JSON lines: each written whole, flushed and synced."""

    def __init__(self, path: Path) -> None:
        self.handle: TextIO = open(path, "a", encoding="utf-8")

    def write(self, kind: str, **fields: Any) -> None:
        self.handle.write(json.dumps({"type": kind, "at": time.time(), **fields},
                                     default=str) + "\n")
        self.handle.flush()
        os.fsync(self.handle.fileno())


def _arguments(argv: Optional[list[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m pytest_ascend.soak.worker")
    parser.add_argument("--card", type=int, required=True, help="the card's index")
    parser.add_argument("--device", required=True, help="the platform (npu, cuda, cpu)")
    parser.add_argument("--dtype", required=True)
    parser.add_argument("--out", type=Path, required=True, help="JSON lines, appended")
    parser.add_argument("--model", help="the model spec (a directory, or tiny)")
    parser.add_argument("--no-model", metavar="REASON",
                        help="run no decode, and say why (the model does not fit a card)")
    parser.add_argument("--cache", type=Path, help="the built-in model's cache directory")
    parser.add_argument("--base-model", help="the spec a built-in draft is built against")
    parser.add_argument("--trust-remote-code", action="store_true")
    parser.add_argument("--threads", type=int, help="host threads (fixed: sums repeat)")
    return parser.parse_args(argv)


def _workloads(args: argparse.Namespace, card: Any, plant: Plant) -> list[Any]:
    from pytest_ascend.model.loading import load_under_test
    from pytest_ascend.soak.workloads import DecodeWorkload, MatmulWorkload, PatternWorkload

    workloads: list[Any] = []
    if args.model and not args.no_model:
        loaded = load_under_test(args.model, card, args.dtype, cache_dir=args.cache,
                                 trust_remote_code=args.trust_remote_code,
                                 base_spec=args.base_model)
        workloads.append(DecodeWorkload(loaded.model, loaded.tokenizer, card, plant.slow_s))
    workloads.append(MatmulWorkload(card, args.dtype))
    workloads.append(PatternWorkload(card))
    return workloads


def main(argv: Optional[list[str]] = None) -> int:
    from pytest_ascend.processes import die_with_parent

    die_with_parent()
    args = _arguments(argv)
    records = RecordFile(args.out)
    try:
        plant = Plant(os.environ.get(PLANT_ENV, ""))
        import torch

        from pytest_ascend.platforms import choose_platform

        if args.threads:
            torch.set_num_threads(args.threads)
        torch.use_deterministic_algorithms(True, warn_only=True)
        started = time.perf_counter()
        card = choose_platform(args.device).open(args.card)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            workloads = _workloads(args, card, plant)
            for workload in workloads:
                workload.run()  # warm-up, and the reference every later run is held to
                workload.reference = None
        records.write("ready", card=args.card, pid=os.getpid(), name=card.name,
                      load_s=time.perf_counter() - started, threads=torch.get_num_threads(),
                      workloads=[w.name for w in workloads], no_model=args.no_model,
                      nondeterministic=_nondeterministic(caught))
    except Exception as exc:  # noqa: BLE001  (the runner reports the line and the card)
        records.write("failed", card=args.card, error=one_line(exc))
        return 1
    go = sys.stdin.readline().split()
    if len(go) != 2 or go[0] != "go":
        return 0  # the runner stopped before the start
    until = float(go[1])
    iteration = 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        while time.time() < until:
            for workload in workloads:
                outcome = workload.run(corrupt=plant.corrupts(iteration, workload.name))
                records.write(
                    "iteration", card=args.card, iteration=iteration, workload=outcome.workload,
                    digest=outcome.digest, parts=outcome.parts if iteration == 0 else None,
                    unit=outcome.unit, seconds=outcome.seconds, work=outcome.work,
                    rate=outcome.rate, fault=outcome.fault, difference=outcome.difference,
                    notes=outcome.notes or None,
                    nondeterministic=_nondeterministic(caught) or None)
                caught.clear()
            iteration += 1
    records.write("done", card=args.card, iterations=iteration)
    return 0


def _nondeterministic(caught: list) -> list[str]:
    """The warnings torch gives for an operator with no deterministic implementation."""
    return sorted({str(w.message).splitlines()[0] for w in caught
                   if "deterministic" in str(w.message)})


if __name__ == "__main__":
    sys.exit(main())
