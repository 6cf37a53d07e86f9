"""A serving configuration derived from facts, and the SGLang launch command / script for it.

The seed picked a batch size from three hard-coded memory thresholds and wrote an unquoted
bash script bound to 0.0.0.0. Here the figures come from arithmetic on what is known:
the weights the model's config implies, the KV bytes one token takes, the device's free
memory and the context length asked for. They are expressed as SGLang's own knobs:

- SGLang sizes its KV pool as `free memory after weights - total x (1 - mem_fraction_static)`
  (python/sglang/srt/model_executor/model_runner.py, profile_max_num_token), so
  `mem_fraction_static` is chosen to leave exactly the activation reserve unallocated;
- `max_total_tokens` is the KV pool in tokens; `max_running_requests` is how many
  requests of the full context length the pool holds at once, so none is ever evicted;
- a model whose weights leave too little room on one device gets the smallest
  tensor-parallel size that fits (weights and KV heads split across devices).

Flags are those of SGLang's server arguments (docs.sglang.io, "Server Arguments", and for
Ascend "Support Features on Ascend NPU": --device npu, --attention-backend ascend). Every
value in the script is shell-quoted, and the server binds 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import argparse
import math
import shlex
from dataclasses import dataclass
from typing import Any, Optional, Sequence

from pytest_ascend.model.arithmetic import (
    DTYPE_BYTES,
    attention_heads,
    config_value,
    kv_bytes_per_card,
    TP_SIZES,
    parameter_count,
    split_sizes,
)

# Weights may take at most this share of a device: the rest is KV cache and activations.
# Above it a deployment serves too few tokens to be useful (Qwen2.5-14B's 29.5 GB of
# float16 weights on a 32 GB device leave ~2 GB: TP=2).
MAX_WEIGHT_SHARE = 0.75
# Activation reserve: one chunked-prefill step's intermediate tensors, plus a fixed margin
# for the framework's workspace.
PREFILL_CHUNK_TOKENS = 2048
FRAMEWORK_MARGIN_BYTES = 256 << 20

# SGLang server arguments this module emits, from SGLang's documentation (Server Arguments;
# Ascend: "Support Features on Ascend NPU", docs.sglang.io/platforms/ascend/). Used to check a
# command when sglang itself is not importable here.
KNOWN_SGLANG_FLAGS = frozenset({
    "--model-path", "--host", "--port", "--device", "--attention-backend", "--tp-size",
    "--tp", "--tensor-parallel-size",
    "--dtype", "--context-length", "--mem-fraction-static", "--max-total-tokens",
    "--max-running-requests", "--chunked-prefill-size", "--trust-remote-code",
    "--sampling-backend", "--served-model-name", "--log-level", "--enable-cache-report",
})


class DeployError(ValueError):
    """The model cannot be served as asked; the message says what would make it fit."""


@dataclass(frozen=True)
class ServingConfig:
    """How to serve one model on devices with `free_bytes` each, and the arithmetic behind it."""

    tp_size: int
    max_total_tokens: int
    max_running_requests: int
    mem_fraction_static: float
    context_len: int
    dtype: str
    weight_bytes: int  # whole model
    weight_bytes_per_device: int
    kv_bytes_per_token_per_device: int
    reserve_bytes: int  # left unallocated per device for activations
    free_bytes: int  # per device, before the weights

    def launch_args(self) -> list[str]:
        return [
            "--tp-size", str(self.tp_size), "--dtype", self.dtype,
            "--context-length", str(self.context_len),
            "--mem-fraction-static", f"{self.mem_fraction_static:.4f}",
            "--max-total-tokens", str(self.max_total_tokens),
            "--max-running-requests", str(self.max_running_requests),
            "--chunked-prefill-size", str(PREFILL_CHUNK_TOKENS),
        ]


def serving_config(
    model_config: Any,
    free_bytes: int,
    *,
    context_len: int,
    dtype: str = "float16",
) -> ServingConfig:
    """The serving configuration for `model_config` (a config.json dict or a transformers
    config) on devices with `free_bytes` of free memory each, before the weights load.

    Picks the smallest tensor-parallel size at which the weights take at most
    MAX_WEIGHT_SHARE of a device and the KV pool holds at least one full-length request.
    """
    if dtype not in DTYPE_BYTES:
        raise DeployError(f"dtype {dtype!r}: use one of {', '.join(DTYPE_BYTES)}")
    if context_len < 1:
        raise DeployError(f"context_len must be >= 1, got {context_len}")
    if free_bytes <= 0:
        raise DeployError(f"free_bytes must be > 0, got {free_bytes}")
    element = DTYPE_BYTES[dtype]
    weights = parameter_count(model_config) * element
    heads = attention_heads(model_config)
    tried = []
    for tp in split_sizes(heads):
        kv_per_device = kv_bytes_per_card(model_config, element, tp)
        weights_per_device = math.ceil(weights / tp)
        reserve = FRAMEWORK_MARGIN_BYTES + activation_bytes(model_config, tp, element)
        pool = free_bytes - weights_per_device - reserve
        tokens = pool // kv_per_device if pool > 0 else 0
        tried.append(f"tp {tp}: {tokens} tokens")
        if weights_per_device <= MAX_WEIGHT_SHARE * free_bytes and tokens >= context_len:
            return ServingConfig(
                tp_size=tp, max_total_tokens=int(tokens),
                max_running_requests=int(tokens // context_len),
                mem_fraction_static=(free_bytes - reserve) / free_bytes,
                context_len=context_len, dtype=dtype, weight_bytes=weights,
                weight_bytes_per_device=weights_per_device,
                kv_bytes_per_token_per_device=kv_per_device, reserve_bytes=reserve,
                free_bytes=free_bytes,
            )
    raise DeployError(
        f"{weights / 1e9:.1f} GB of {dtype} weights with {context_len}-token contexts do not "
        f"fit {max(TP_SIZES)} devices of {free_bytes / 1e9:.1f} GB free ({'; '.join(tried)}): "
        f"use a shorter --context-length, a smaller dtype or more devices"
    )


def activation_bytes(model_config: Any, tp: int, element: int,
                     tokens: int = PREFILL_CHUNK_TOKENS) -> int:
    """Intermediate tensors of a prefill of `tokens` positions (by default one chunk): a few
    hidden-size buffers and the gated MLP's three intermediate-size ones (split across TP
    ranks)."""
    hidden = config_value(model_config, "hidden_size")
    inter = config_value(model_config, "intermediate_size")
    return tokens * (4 * hidden + 3 * inter // tp) * element


def launch_command(
    config: Optional[ServingConfig],
    model_path: str,
    *,
    platform: Any,
    host: str = "127.0.0.1",
    port: int = 30000,
    python: str = "python",
    extra_args: Sequence[str] = (),
) -> list[str]:
    """argv of `python -m sglang.launch_server` on `platform`'s device (a platforms.Platform:
    it says which flags its SGLang needs), with `config`'s sizing (None: SGLang's own) and
    `extra_args`. The one place a launch command is built; every flag is checked against
    SGLang's arguments."""
    argv = [python, "-m", "sglang.launch_server", "--model-path", str(model_path),
            "--host", host, "--port", str(int(port)), *platform.sglang_flags,
            *(config.launch_args() if config is not None else ()), *extra_args]
    check_sglang_flags(argv[3:])
    return argv


def launch_script(
    config: ServingConfig,
    model_path: str,
    *,
    platform: Any,
    host: str = "127.0.0.1",
    port: int = 30000,
) -> str:
    """A bash script that starts the SGLang server for `config`; every value shell-quoted."""
    argv = launch_command(config, model_path, platform=platform, host=host, port=port)
    lines = [shlex.join(argv[:3])]
    rest = argv[3:]
    i = 0
    while i < len(rest):  # one flag (and its value) per line
        take = 2 if i + 1 < len(rest) and not rest[i + 1].startswith("--") else 1
        lines.append("    " + shlex.join(rest[i:i + take]))
        i += take
    facts = (
        f"# tp {config.tp_size}; weights {config.weight_bytes_per_device / 1e9:.2f} GB/device; "
        f"KV {config.kv_bytes_per_token_per_device} B/token/device; "
        f"{config.max_total_tokens} tokens = {config.max_running_requests} x "
        f"{config.context_len}-token requests; free {config.free_bytes / 1e9:.2f} GB/device"
    )
    return "\n".join([
        "#!/usr/bin/env bash",
        "# SGLang launch script generated by pytest-ascend (pytest_ascend.serving.deploy) from the",
        "# devices' free memory and the model's config.",
        facts,
        "set -euo pipefail",
        "exec " + " \\\n".join(lines),
        "",
    ])


def check_sglang_flags(args: Sequence[str]) -> None:
    """Refuse flags SGLang does not know: parsed by SGLang's own ServerArgs parser where
    sglang is importable, else checked against KNOWN_SGLANG_FLAGS."""
    parser = _sglang_parser()
    if parser is not None:
        try:
            parser.parse_args(list(args))
        except (SystemExit, argparse.ArgumentError):
            raise DeployError(f"SGLang's ServerArgs rejects: {shlex.join(args)}") from None
        return
    unknown = sorted({a.split("=", 1)[0] for a in args if a.startswith("--")} - KNOWN_SGLANG_FLAGS)
    if unknown:
        raise DeployError(f"not SGLang server flags (per its documentation): {', '.join(unknown)}")


def _sglang_parser() -> Optional[Any]:
    try:
        from sglang.srt.server_args import ServerArgs
    except Exception:  # not installed, or installed without what its import needs
        return None
    parser = argparse.ArgumentParser(exit_on_error=False)
    ServerArgs.add_cli_args(parser)
    return parser
