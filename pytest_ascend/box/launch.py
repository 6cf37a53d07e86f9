"""torchrun jobs on the selected cards, both ends: the launcher's (which rank drives which
card, the environment that makes it so, the command) and the rank's (join the job on its
card).

One rank per card, each rank's LOCAL_RANK the index of its card among those the job sees.
The platform's visible-devices variable narrows what the ranks see to the selected cards,
mapped through any value it already has (ASCEND_RT_VISIBLE_DEVICES=4,5,6,7 with cards 1,3
selected gives 5,7), and always in ascending order: since torch_npu 2.6 an unsorted
ASCEND_RT_VISIBLE_DEVICES (`3,1`) makes `device_count()` 0 in every child (design.md, "The
Atlas box as it is"). The runtime numbers the visible cards in that ascending order, so
rank i drives the i-th lowest selected card, whatever order `--ascend-devices` gave:
`RankLayout.cards` says which, and results per rank are attributed through it. A host
platform has no such variable: its ranks share the host.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any, Mapping, NoReturn, Optional, Sequence

HOST_RANKS = 2  # ranks a run on a host platform starts: collectives need two ends


@dataclass(frozen=True)
class RankLayout:
    """Which card each rank of a torchrun job drives, and the job's environment."""

    cards: tuple  # cards[i]: the card rank i (LOCAL_RANK i) drives, as the caller opened it
    env: dict[str, str]

    @property
    def ranks(self) -> int:
        return len(self.cards)

    @property
    def card_indices(self) -> list[int]:
        """Each rank's card by the caller's index (the header's and the reports' numbering)."""
        return [card.index for card in self.cards]


def rank_layout(cards: Sequence[Any], environ: Optional[Mapping[str, str]] = None
                ) -> RankLayout:
    """The layout of a job on `cards`: one rank per card, in ascending order of the ids the
    visible-devices variable gets, with this environment narrowed to them; on a host
    platform, HOST_RANKS ranks sharing the host."""
    env = dict(os.environ if environ is None else environ)
    platform = cards[0].platform
    if not platform.one_rank_per_card:
        return RankLayout((cards[0],) * HOST_RANKS, env)
    variable = platform.visible_devices_env
    if not variable:
        return RankLayout(tuple(sorted(cards, key=lambda card: card.index)), env)
    current = [part.strip() for part in env.get(variable, "").split(",") if part.strip()]

    def runtime_id(card: Any) -> int:
        return int(current[card.index]) if card.index < len(current) else card.index

    ordered = tuple(sorted(cards, key=runtime_id))
    env[variable] = ",".join(str(runtime_id(card)) for card in ordered)
    return RankLayout(ordered, env)


def torchrun_argv(module: str, ranks: int, arguments: Sequence[str], *,
                  nodes: int = 1, endpoint: Optional[str] = None,
                  run_id: str = "pytest-ascend") -> list[str]:
    """`python -m torch.distributed.run` (torchrun, from this interpreter) for `module`:
    a standalone rendezvous on one node, or a c10d rendezvous at `endpoint` for `nodes`."""
    argv = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={ranks}"]
    if nodes == 1 and endpoint is None:
        argv += ["--standalone"]
    else:
        argv += [f"--nnodes={nodes}", "--rdzv-backend=c10d", f"--rdzv-endpoint={endpoint}",
                 f"--rdzv-id={run_id}"]
    return [*argv, "-m", module, *arguments]


def under_torchrun() -> bool:
    """Whether this process is a torchrun rank (RANK, WORLD_SIZE and LOCAL_RANK are set)."""
    return "RANK" in os.environ


@dataclass(frozen=True)
class RankContext:
    """A rank of a torchrun job, joined: its place in the job and the card it drives."""

    rank: int
    ranks: int
    local_rank: int
    platform: Any
    card: Any


def join_job(device_choice: str) -> RankContext:
    """In a torchrun rank: die with the launcher, open the card of LOCAL_RANK (the host on a
    platform whose ranks share it) and join the platform's process group (hccl, nccl, gloo)
    before anything else touches torch.distributed."""
    from pytest_ascend.processes import die_with_parent

    die_with_parent()  # a killed launcher takes its ranks with it
    import torch.distributed as dist

    from pytest_ascend.platforms import choose_platform

    local_rank = int(os.environ["LOCAL_RANK"])
    platform = choose_platform(device_choice)
    card = platform.open(local_rank if platform.one_rank_per_card else 0)
    dist.init_process_group(backend=platform.distributed_backend)
    return RankContext(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), local_rank,
                       platform, card)


def end_rank(status: int) -> NoReturn:
    """End a rank that succeeded: every rank meets at a barrier, then the process exits with
    `status` at once, its output flushed, without tearing the process group down.

    Teardown is where finished jobs hung. destroy_process_group while another rank is still
    inside a collective hangs (pytorch #75097), hence the barrier. And gloo's destructor joins
    its worker threads holding the GIL, while a worker dropping the last reference to a tensor
    a collective used waits for the GIL: a deadlock (pytorch #56297; the destructor releases
    the GIL from torch 2.8, PR #154976). py-spy caught it on torch 2.1, two ranks of four in
    `~ProcessGroupGloo` -> `std::thread::join`, their workers in `gil_scoped_acquire`, about
    one two-node job in three on a loaded machine. The process's exit frees what teardown
    would (sockets, HCCL and NCCL communicators with the driver's context). A failing rank
    exits without the barrier, which it might never pass, and torchrun stops the others."""
    import torch.distributed as dist

    dist.barrier()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
