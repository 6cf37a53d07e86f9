"""Golden outputs on disk: what a trusted run of a model produced, to compare other runs with.

A golden is a directory with two files:
- `golden.json`: the manifest a person can read: format version, when and on what it was
  recorded (the run's environment block), the model's checksum, the dtype, and per prompt
  its token ids, the greedy answer (ids and text) and each position's top-1/top-2 margin;
- `golden.safetensors`: per prompt, the top-k ids and log-probabilities at every generated
  position (float64) and the full-vocabulary log-probabilities at a few positions.
The manifest carries the tensors file's size and sha256 and a checksum of itself, so a file
cut short or edited by hand is refused by name instead of silently compared against.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from pytest_ascend.model.prompts import SEED_PROMPTS, SEED_WORKLOADS, chat_prompt, long_prompt_ids
from pytest_ascend.numerics.decoding import decode_answer
from pytest_ascend.numerics.fingerprint import file_sha256

FORMAT, VERSION = "pytest-ascend-golden", 1
MANIFEST, TENSORS = "golden.json", "golden.safetensors"
TOP_K = 20
LONG_CONTEXT, LONG_NEW_TOKENS = 4096, 32


class GoldenError(ValueError):
    """A golden that cannot be used; the message names the file and what to do."""


@dataclass(frozen=True)
class GoldenPrompt:
    name: str
    prompt_ids: list[int]
    tokens: list[int]  # the greedy answer
    top_ids: torch.Tensor  # [positions, k]
    top_logprobs: torch.Tensor  # [positions, k], float64, best first
    full_logprobs: dict  # position -> [vocab] float64


@dataclass(frozen=True)
class Golden:
    directory: Optional[Path]
    manifest: dict
    prompts: tuple[GoldenPrompt, ...]

    @property
    def dtype(self) -> str:
        return str(self.manifest["dtype"])

    @property
    def model_sha256(self) -> str:
        return str(self.manifest["model"]["fingerprint"]["sha256"])

    @property
    def perplexity(self) -> Optional[dict]:
        return self.manifest.get("perplexity")

    def describe(self) -> str:
        model = self.manifest["model"]
        env = self.manifest.get("environment") or {}
        return (f"golden of {model.get('name')} in {self.dtype}, recorded "
                f"{self.manifest.get('created')} on {env.get('device_kind')} "
                f"{env.get('device_name')}")


def golden_prompts(tokenizer: Any, max_positions: int) -> list[tuple[str, list[int], int]]:
    """(name, prompt ids, tokens to generate): every prompt of the seed workloads with its
    workload's answer length, and one long-context prompt of natural text."""
    prompts = [(key, tokenizer(chat_prompt(tokenizer, SEED_PROMPTS[key]))["input_ids"],
                workload.max_new_tokens)
               for workload in SEED_WORKLOADS for key in workload.prompt_keys]
    long_len = min(LONG_CONTEXT, max_positions - LONG_NEW_TOKENS)
    prompts.append((f"long_context_{long_len}", long_prompt_ids(tokenizer, long_len),
                    LONG_NEW_TOKENS))
    return prompts


def full_positions(steps: int) -> list[int]:
    """Where the full vocabulary is kept: the first, the middle and the last position."""
    return sorted({0, steps // 2, steps - 1})


def record_golden(model: Any, tokenizer: Any, *, dtype: str, model_name: str,
                  fingerprint: dict, environment: dict,
                  perplexity: Optional[dict] = None,
                  progress: Callable[[str], None] = lambda _: None) -> Golden:
    """Decode every golden prompt greedily and keep what a comparison needs."""
    prompts, described = [], []
    max_positions = getattr(model.config, "max_position_embeddings", LONG_CONTEXT * 2)
    for name, ids, steps in golden_prompts(tokenizer, max_positions):
        progress(f"recording {name} ({len(ids)} prompt tokens, {steps} to generate)")
        answer = decode_answer(model, ids, steps)
        top = answer.logprobs.topk(TOP_K, dim=1)
        kept = {pos: answer.logprobs[pos].clone() for pos in full_positions(steps)}
        prompts.append(GoldenPrompt(name, list(ids), answer.tokens, top.indices.contiguous(),
                                    top.values.contiguous(), kept))
        described.append({
            "name": name,
            "prompt_text": tokenizer.decode(ids) if len(ids) <= 512 else None,
            "prompt_ids": list(ids),
            "new_tokens": steps,
            "tokens": answer.tokens,
            "answer": tokenizer.decode(answer.tokens),
            "top1_margin": [round(float(m), 6) for m in top.values[:, 0] - top.values[:, 1]],
            "full_positions": sorted(kept),
        })
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "model": {"name": model_name, "fingerprint": fingerprint,
                  "vocab_size": next(iter(prompts[0].full_logprobs.values())).numel()},
        "dtype": dtype,
        "top_k": TOP_K,
        "environment": environment,
        "perplexity": perplexity,
        "prompts": described,
    }
    return Golden(None, manifest, tuple(prompts))


def write_golden(golden: Golden, out_dir: Path, *, force: bool = False) -> Path:
    """Write `golden` into `out_dir`; an existing golden there is replaced only with `force`.

    The tensors go first, the manifest (which holds their checksum) last, each by a rename:
    a crash in between leaves an old manifest that refuses the new tensors, never a golden
    that reads as valid and is not."""
    from safetensors.torch import save

    out_dir = Path(out_dir)
    if (out_dir / MANIFEST).exists() and not force:
        raise GoldenError(f"{out_dir} already holds a golden ({MANIFEST}); pass --force to "
                          f"replace it, or choose another --out")
    out_dir.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for prompt in golden.prompts:
        tensors[f"{prompt.name}.top_ids"] = prompt.top_ids
        tensors[f"{prompt.name}.top_logprobs"] = prompt.top_logprobs
        tensors[f"{prompt.name}.full_logprobs"] = torch.stack(
            [prompt.full_logprobs[pos] for pos in sorted(prompt.full_logprobs)])
    staged, staged_manifest = _staging(out_dir, TENSORS), _staging(out_dir, MANIFEST)
    try:
        # Serialised here and written by us: safetensors' save_file replaces the file with
        # one of mode 0600 (a nightly job of another user could not read the golden), and
        # reports a full disk as its own SafetensorError instead of an OSError.
        staged.write_bytes(save(tensors, metadata={"format": FORMAT, "version": str(VERSION)}))
        manifest = dict(golden.manifest)
        manifest["tensors"] = {"file": TENSORS, "bytes": staged.stat().st_size,
                               "sha256": file_sha256(staged)}
        manifest["manifest_sha256"] = _manifest_sha256(manifest)
        text = json.dumps(manifest, indent=1, ensure_ascii=False, default=str) + "\n"
        staged_manifest.write_text(text, encoding="utf-8")
        os.replace(staged, out_dir / TENSORS)
        os.replace(staged_manifest, out_dir / MANIFEST)
    finally:
        for leftover in (staged, staged_manifest):
            leftover.unlink(missing_ok=True)
    return out_dir


def read_golden(directory: Path) -> Golden:
    """The golden in `directory`, checked whole: format, version, both checksums, and every
    tensor a comparison will read, in the shape the manifest says."""
    from safetensors.torch import load_file

    directory = Path(directory)
    manifest_path, tensors_path = directory / MANIFEST, directory / TENSORS
    again = "record it again with `pytest-ascend golden record --out DIR`"
    if not manifest_path.is_file():
        raise GoldenError(f"{directory}: no {MANIFEST}, so not a golden; {again}")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise GoldenError(f"{manifest_path} is unreadable or cut short ({exc}); {again}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise GoldenError(f"{manifest_path} is not a pytest-ascend golden; {again}")
    if manifest.get("version") != VERSION:
        raise GoldenError(f"{manifest_path} is format version {manifest.get('version')}, this "
                          f"pytest-ascend reads version {VERSION}; {again}")
    if manifest.get("manifest_sha256") != _manifest_sha256(manifest):
        raise GoldenError(f"{manifest_path} was edited or damaged (its checksum does not "
                          f"match its content); {again}")
    expected = manifest["tensors"]
    if not tensors_path.is_file():
        raise GoldenError(f"{tensors_path} is missing; {again}")
    if tensors_path.stat().st_size != expected["bytes"] or \
            file_sha256(tensors_path) != expected["sha256"]:
        raise GoldenError(f"{tensors_path} is cut short or changed ({tensors_path.stat().st_size}"
                          f" bytes, the manifest says {expected['bytes']}; or its sha256 "
                          f"differs); {again}")
    try:
        tensors = load_file(str(tensors_path))
        prompts = tuple(_prompt(entry, tensors, int(manifest["top_k"]))
                        for entry in manifest["prompts"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise GoldenError(f"{directory}: the golden's files do not agree with each other "
                          f"({exc}); {again}") from None
    return Golden(directory, manifest, prompts)


def _prompt(entry: dict, tensors: dict, k: int) -> GoldenPrompt:
    name, steps = entry["name"], int(entry["new_tokens"])
    top_ids, top_lp = tensors[f"{name}.top_ids"], tensors[f"{name}.top_logprobs"]
    full = tensors[f"{name}.full_logprobs"]
    positions = [int(p) for p in entry["full_positions"]]
    if tuple(top_ids.shape) != (steps, k) or tuple(top_lp.shape) != (steps, k) or \
            len(entry["tokens"]) != steps or full.shape[0] != len(positions):
        raise ValueError(f"prompt {name}: tensor shapes do not match {steps} positions, "
                         f"top-{k}")
    return GoldenPrompt(name, [int(t) for t in entry["prompt_ids"]],
                        [int(t) for t in entry["tokens"]], top_ids, top_lp,
                        dict(zip(positions, full)))


def check_model(golden: Golden, fingerprint: dict, model_label: str) -> None:
    """A golden of another model (or of another copy whose weights differ) is no reference."""
    if golden.model_sha256 != fingerprint["sha256"]:
        recorded = golden.manifest["model"]
        what = ("its weights" if recorded["fingerprint"].get("config_sha256")
                == fingerprint["config_sha256"] else "its config")
        raise GoldenError(
            f"{golden.directory} was recorded from another model ({recorded.get('name')}, "
            f"sha256 {golden.model_sha256[:12]}) than {model_label} (sha256 "
            f"{fingerprint['sha256'][:12]}; {what} differ): record a golden of this model, "
            f"or pass the model the golden was recorded from")


def _manifest_sha256(manifest: dict) -> str:
    body = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    blob = json.dumps(body, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _staging(out_dir: Path, name: str) -> Path:
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=f".{name}-")
    os.close(fd)
    os.chmod(tmp, 0o644)  # a golden is for others to read, not private as mkstemp makes it
    return Path(tmp)
