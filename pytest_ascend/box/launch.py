"""Starting a torchrun job for the selected cards: one rank per card, each rank's
LOCAL_RANK the index of its card among those the job sees.

The platform's visible-devices variable narrows what the ranks see to the selected cards,
mapped through any value it already has (ASCEND_RT_VISIBLE_DEVICES=4,5,6,7 with cards 1,3
selected gives 5,7). A host platform has no such variable: its ranks share the host.
"""

from __future__ import annotations

import os
import sys
from typing import Mapping, Optional, Sequence

HOST_RANKS = 2  # ranks a run on a host platform starts: collectives need two ends


def rank_count(cards: Sequence) -> int:
    return len(cards) if cards[0].is_accelerator else HOST_RANKS


def rank_environment(cards: Sequence, environ: Optional[Mapping[str, str]] = None
                     ) -> dict[str, str]:
    """The job's environment: this one, with the visible devices narrowed to `cards`."""
    env = dict(os.environ if environ is None else environ)
    variable = cards[0].platform.visible_devices_env
    if variable and cards[0].is_accelerator:
        current = [part.strip() for part in env.get(variable, "").split(",") if part.strip()]
        env[variable] = ",".join(current[card.index] if card.index < len(current)
                                 else str(card.index) for card in cards)
    return env


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
