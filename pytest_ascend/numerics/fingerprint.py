"""The identity of a checkpoint: the checksum of its config and its weight files.

A golden is only a reference for the model that recorded it; comparing a run with another
model's golden would report "numerics drift" for what is a different model. The weights of a
14B checkpoint are ~30 GB, so each file's digest is remembered (keyed by path, size and mtime)
in the pytest-ascend cache: the first session pays about a minute, later ones nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Callable, Optional

# Written by the library that saved the config, not part of the model: a checkpoint copied
# to a machine with another transformers is the same model.
_CONFIG_KEYS_IGNORED = ("transformers_version", "_name_or_path")
_WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin")
_CACHE_FILE = "fingerprints.json"


def model_fingerprint(model_dir: Path, cache_dir: Optional[Path] = None,
                      progress: Optional[Callable[[str], None]] = None) -> dict:
    """{"config_sha256", "weights_sha256", "sha256"} of the checkpoint in `model_dir`."""
    model_dir = Path(model_dir)
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    for key in _CONFIG_KEYS_IGNORED:
        config.pop(key, None)
    config_sha = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()
    files = sorted({p for pattern in _WEIGHT_PATTERNS for p in model_dir.glob(pattern)})
    known = _read_cache(cache_dir)
    weights = hashlib.sha256()
    for path in files:
        digest = _file_digest(path, known, progress)
        weights.update(f"{path.name}\0{digest}\n".encode())
    _write_cache(cache_dir, known)
    weights_sha = weights.hexdigest()
    combined = hashlib.sha256(f"{config_sha}\n{weights_sha}".encode()).hexdigest()
    return {"config_sha256": config_sha, "weights_sha256": weights_sha, "sha256": combined}


def _file_digest(path: Path, known: dict, progress: Optional[Callable[[str], None]]) -> str:
    stat = path.stat()
    key = str(path.resolve())
    entry = known.get(key)
    if entry and entry.get("size") == stat.st_size and entry.get("mtime_ns") == stat.st_mtime_ns:
        return str(entry["sha256"])
    if progress is not None and stat.st_size > 1 << 30:
        progress(f"checksumming {path} ({stat.st_size / 2**30:.1f} GiB, once per file)")
    digest = file_sha256(path)
    known[key] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": digest}
    return digest


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while block := fh.read(1 << 24):
            digest.update(block)
    return digest.hexdigest()


def _read_cache(cache_dir: Optional[Path]) -> dict:
    if cache_dir is None:
        return {}
    try:
        known = json.loads((Path(cache_dir) / _CACHE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # absent or damaged: only costs a re-hash
    return known if isinstance(known, dict) else {}


def _write_cache(cache_dir: Optional[Path], known: dict) -> None:
    """Atomically, and never fatal: the cache only saves time."""
    if cache_dir is None:
        return
    try:
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=".fingerprints-")
    except OSError:
        return
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(known, fh, indent=1, sort_keys=True)
        os.replace(tmp, Path(cache_dir) / _CACHE_FILE)
    except OSError:
        Path(tmp).unlink(missing_ok=True)
