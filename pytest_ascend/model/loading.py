"""Loading the model under test: a local checkpoint directory or the built-in tiny model.

Both go through the same `from_pretrained` path, so a smoke run on the tiny model exercises
the code a real Qwen2.5-14B run uses. Problems a user can fix (a wrong path, a truncated
download, a model larger than the device) are found before any test runs and reported in one
line; see `inspect_checkpoint` and `check_fits`.
"""

from __future__ import annotations

import json
import struct
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from pytest_ascend.errors import one_line
from pytest_ascend.model import tiny
from pytest_ascend.model.arithmetic import DTYPE_BYTES, TP_SIZES, split_sizes

_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model")


class ModelSpecError(ValueError):
    """A model option that cannot work; the message says what is wrong and what to do."""


class ModelLoadError(RuntimeError):
    """from_pretrained failed on a directory that looked sound."""


@dataclass(frozen=True)
class CheckpointInfo:
    """What a checkpoint directory holds, read from its files without loading weights."""

    path: Path
    model_type: str
    parameters: Optional[int]  # None for pickled (.bin) weights, whose sizes need torch.load
    attention_heads: Optional[int] = None  # what a tensor-parallel split must divide

    def weight_bytes(self, dtype: str) -> Optional[int]:
        return None if self.parameters is None else self.parameters * DTYPE_BYTES[dtype]


@dataclass
class ModelUnderTest:
    """A loaded model with the facts the suite reports about it."""

    model: Any
    tokenizer: Any
    spec: str
    path: Path
    dtype: str
    builtin: bool
    parameters: int
    weight_bytes: int
    load_seconds: float
    memory_before: Any  # device.MemorySnapshot just before loading
    memory_after: Any  # ... and just after the weights reached the device

    @property
    def name(self) -> str:
        return self.spec if self.builtin else self.path.name


Progress = Callable[[str], None]


def _silent(message: str) -> None:
    """The default progress sink: say nothing."""


def resolve_model_dir(
    spec: str, cache_dir: Path, base_spec: Optional[str] = None, progress: Progress = _silent
) -> Path:
    """The directory `spec` names, building a built-in model into the cache if needed.

    `base_spec` is the main model's spec when resolving a draft, so tiny-draft shares the
    tokenizer of whichever tiny recipe the main model uses.
    """
    if tiny.is_builtin_spec(spec):
        recipe = _builtin_recipe(spec, "--ascend-model", base_spec)
        name = spec.split(":", 1)[0]
        try:
            return tiny.ensure_built(recipe, cache_dir, name=name, progress=progress)
        except OSError as exc:  # a full or read-only cache: one line, not a transformers trace
            raise ModelSpecError(_cache_problem(cache_dir, exc)) from None
    return inspect_checkpoint(spec).path


def check_buildable(spec: str, cache_dir: Path, base_spec: Optional[str] = None) -> None:
    """A built-in model not yet in the cache needs a cache it can be written to: check that
    before any test, so the problem is one line at start-up, not an error in every test."""
    if not tiny.is_builtin_spec(spec):
        return
    recipe = _builtin_recipe(spec, "--ascend-model", base_spec)
    final = tiny.built_dir(recipe, cache_dir, spec.split(":", 1)[0])
    if final.is_dir():
        return
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=final.parent):
            pass
    except OSError as exc:
        raise ModelSpecError(_cache_problem(cache_dir, exc)) from None


def _cache_problem(cache_dir: Path, exc: OSError) -> str:
    return (f"--ascend-cache {cache_dir}: cannot build the built-in model there "
            f"({exc.strerror or exc}); pass --ascend-cache=DIR on a writable disk with a few "
            f"MB free, or fix the directory's permissions")


def check_model_spec(
    spec: str, option: str = "--ascend-model", base_spec: Optional[str] = None
) -> Optional[CheckpointInfo]:
    """Check a model option without loading anything: a built-in recipe must parse, a
    checkpoint directory must pass `inspect_checkpoint` (whose facts are returned)."""
    if tiny.is_builtin_spec(spec):
        _builtin_recipe(spec, option, base_spec)
        return None
    return inspect_checkpoint(spec, option)


def _builtin_recipe(spec: str, option: str, base_spec: Optional[str]) -> tiny.TinyRecipe:
    try:
        return tiny.parse_spec(spec, base_spec)
    except tiny.RecipeError as exc:
        raise ModelSpecError(f"{option} {spec}: {exc}") from None


def inspect_checkpoint(spec: str, option: str = "--ascend-model") -> CheckpointInfo:
    """Check a checkpoint directory without loading it; raise ModelSpecError naming the problem.

    Catches what a truncated download or a wrong path looks like: missing directory, no or
    unreadable config.json, no weights, a shard the index names but the directory lacks, a
    safetensors file shorter than its own header says.
    """
    path = Path(spec).expanduser()
    where = f"{option} {spec}"
    fix = "pass a local checkpoint directory (config.json, *.safetensors, tokenizer files) or 'tiny'"
    if not path.exists():
        raise ModelSpecError(f"{where}: no such directory; {fix}")
    if not path.is_dir():
        raise ModelSpecError(f"{where}: is a file, not a directory; {fix}")
    config_file = path / "config.json"
    if not config_file.is_file():
        raise ModelSpecError(f"{where}: no config.json, so not a transformers checkpoint; {fix}")
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelSpecError(
            f"{where}: config.json is unreadable ({exc}); the download is incomplete or corrupt"
        ) from None
    if not isinstance(config, dict) or "model_type" not in config:
        raise ModelSpecError(f"{where}: config.json has no model_type; not a transformers config")
    if not any((path / name).is_file() for name in _TOKENIZER_FILES):
        raise ModelSpecError(
            f"{where}: no tokenizer files ({', '.join(_TOKENIZER_FILES)}); copy them from the "
            f"model's release next to config.json"
        )
    heads = config.get("num_attention_heads")
    return CheckpointInfo(path, str(config["model_type"]), _count_parameters(path, where),
                          heads if isinstance(heads, int) and heads > 0 else None)


def _count_parameters(path: Path, where: str) -> Optional[int]:
    shards = _weight_shards(path, where)
    if any(s.suffix != ".safetensors" for s in shards):
        return None
    return sum(_safetensors_elements(shard, where) for shard in shards)


def _weight_shards(path: Path, where: str) -> list[Path]:
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        index = path / index_name
        if index.is_file():
            try:
                weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise ModelSpecError(f"{where}: {index_name} is unreadable ({exc})") from None
            shards = [path / name for name in sorted(set(weight_map.values()))]
            missing = [s.name for s in shards if not s.is_file()]
            if missing:
                raise ModelSpecError(
                    f"{where}: {len(missing)} weight shard(s) named in {index_name} are missing "
                    f"(first: {missing[0]}); the download is incomplete"
                )
            return shards
    shards = sorted(path.glob("*.safetensors")) or sorted(path.glob("pytorch_model*.bin"))
    if not shards:
        raise ModelSpecError(
            f"{where}: no weight files (*.safetensors or pytorch_model*.bin); the download is "
            f"incomplete or this is not a model directory"
        )
    return shards


def _safetensors_elements(shard: Path, where: str) -> int:
    """Element count from a safetensors header (8-byte length, then JSON), checking that the
    file is as long as the header says: a truncated shard fails here, not mid-test."""
    corrupt = f"{where}: {shard.name} is corrupt or truncated"
    try:
        size = shard.stat().st_size
        with shard.open("rb") as fh:
            (header_len,) = struct.unpack("<Q", fh.read(8))
            if header_len > size - 8:
                raise ModelSpecError(f"{corrupt} (header length {header_len} > file size)")
            header = json.loads(fh.read(header_len))
    except (OSError, struct.error, ValueError) as exc:
        if isinstance(exc, ModelSpecError):
            raise
        raise ModelSpecError(f"{corrupt} ({exc}); download it again") from None
    elements, data_end = 0, 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        n = 1
        for dim in entry["shape"]:
            n *= dim
        elements += n
        data_end = max(data_end, entry["data_offsets"][1])
    if 8 + header_len + data_end > size:
        raise ModelSpecError(
            f"{corrupt} (needs {8 + header_len + data_end} bytes, has {size}); download it again"
        )
    return elements


def check_fits(info: CheckpointInfo, dtype: str, free_bytes: Optional[int], device_label: str,
               selected_cards: int = 1) -> Optional[str]:
    """Decide, before any test, whether the model's weights fit one card's free memory.

    None when they do. When they do not, but the selected cards can hold them split
    (tensor parallel), the reason the single-card tests skip: the box, the SGLang server
    (launched with that --tp-size) and the collectives still run. Otherwise ModelSpecError
    naming the --ascend-devices that would hold it."""
    need = info.weight_bytes(dtype)
    if need is None or free_bytes is None or need <= free_bytes:
        return None
    where = (f"--ascend-model {info.path}: its {dtype} weights need {need / 2**30:.1f} GiB but "
             f"{device_label} has {free_bytes / 2**30:.1f} GiB free")
    sizes = split_sizes(info.attention_heads) if info.attention_heads else TP_SIZES
    split = next((tp for tp in sizes if -(-need // tp) <= free_bytes), None)
    if split is not None and selected_cards >= split:
        return (f"{where}: a single card cannot hold it, so the single-card tests skip; the "
                f"{selected_cards} selected cards hold it split {split} ways (SGLang --tp-size "
                f"{split})")
    if split is None:
        raise ModelSpecError(f"{where}, and a split over {max(TP_SIZES)} such cards does not "
                             f"fit either: use cards with more memory or a smaller dtype")
    raise ModelSpecError(
        f"{where}; select {split} cards to hold it split (tensor parallel {split}, "
        f"{need / split / 2**30:.1f} GiB each): --ascend-devices={','.join(map(str, range(split)))}"
    )


def load_model(spec: str, device: Any, dtype: str, **options: Any) -> tuple[Any, Any]:
    """Load (model, tokenizer) for `spec` onto `device` (a DeviceUnderTest) in `dtype`.

    The model is in eval mode; the tokenizer pads on the left (decoder-only batches must)
    and always has a pad token. `options` are those of `load_under_test` (built-in models
    are built into `cache_dir`, by default the user cache), which does the work and also
    records what the load cost.
    """
    loaded = load_under_test(spec, device, dtype, **options)
    return loaded.model, loaded.tokenizer


def _load_dir(path: Path, device: Any, dtype: str, trust_remote_code: bool) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from pytest_ascend.model.hf_compat import (
        DTYPE_KWARG,
        TORCH_DTYPES,
        quiet_progress_bars,
        restrict_tokenizer_inputs,
    )

    try:
        with quiet_progress_bars():
            tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
            model, info = AutoModelForCausalLM.from_pretrained(
                path,
                trust_remote_code=trust_remote_code,
                output_loading_info=True,
                **{DTYPE_KWARG: TORCH_DTYPES[dtype]},
            )
    except Exception as exc:
        raise ModelLoadError(f"loading {path} failed: {one_line(exc)}") from exc
    # from_pretrained fills tensors the checkpoint lacks (or has in another shape) with fresh
    # random values and only logs it: for a validation run that is a silently wrong model.
    absent = list(info.get("missing_keys") or []) + list(info.get("mismatched_keys") or [])
    if absent:
        first = absent[0][0] if isinstance(absent[0], tuple) else absent[0]
        raise ModelLoadError(
            f"loading {path}: {len(absent)} weight tensor(s) are missing or of the wrong shape "
            f"(first: {first}); the checkpoint is incomplete or does not match config.json"
        )
    model = model.to(device.torch_device).eval()
    tokenizer.padding_side = "left"
    restrict_tokenizer_inputs(tokenizer, model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def load_under_test(
    spec: str,
    device: Any,
    dtype: str,
    *,
    cache_dir: Optional[Path] = None,
    trust_remote_code: bool = False,
    base_spec: Optional[str] = None,
    progress: Progress = _silent,
) -> ModelUnderTest:
    """`load_model` with the memory the load took measured around it, for the capacity check.

    `progress` receives a line before and after: loading a 14B checkpoint takes minutes and
    must not look like a hang.
    """
    path = resolve_model_dir(spec, cache_dir or tiny.default_cache_dir(), base_spec, progress)
    progress(f"loading {path} ({dtype}) onto {device.torch_device} ...")
    device.empty_cache()
    device.synchronize()
    before = device.memory()
    start = time.perf_counter()
    model, tokenizer = _load_dir(path, device, dtype, trust_remote_code)
    device.synchronize()
    load_seconds = time.perf_counter() - start
    after = device.memory()
    loaded = ModelUnderTest(
        model=model,
        tokenizer=tokenizer,
        spec=spec,
        path=path,
        dtype=dtype,
        builtin=tiny.is_builtin_spec(spec),
        parameters=sum(p.numel() for p in model.parameters()),
        weight_bytes=sum(p.numel() * p.element_size() for p in model.parameters()),
        load_seconds=load_seconds,
        memory_before=before,
        memory_after=after,
    )
    progress(
        f"loaded {loaded.name}: {loaded.parameters / 1e6:,.1f} M parameters, "
        f"{loaded.weight_bytes / 2**30:.2f} GiB of weights in {load_seconds:.1f} s"
    )
    return loaded
