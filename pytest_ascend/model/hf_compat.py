"""What differs between the transformers releases the suite meets (4.x on Ascend images,
5.x on fresh machines), decided by feature, in one place."""

from __future__ import annotations

import functools
import inspect
from contextlib import contextmanager
from typing import Any, Iterator, Optional

import torch
import transformers
from packaging.version import Version
from transformers.utils import logging as hf_logging

TORCH_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}

# from_pretrained took `torch_dtype=` until 4.56, which added `dtype=`; 5.x dropped the old one.
DTYPE_KWARG = "dtype" if Version(transformers.__version__) >= Version("4.56") else "torch_dtype"


def tensor_parallel_kwargs() -> dict:
    """`from_pretrained` keywords that split a model with its own tensor-parallel plan across
    the ranks of the initialised process group: a DistributedConfig where this transformers
    has one (5.x; passing `tp_plan` itself is deprecated there), else `tp_plan="auto"`
    (4.50+, which Ascend images carry)."""
    try:
        from transformers.distributed import DistributedConfig
    except ImportError:
        return {"tp_plan": "auto"}
    if "tp_plan" not in inspect.signature(DistributedConfig).parameters:
        return {"tp_plan": "auto"}
    return {"distributed_config": DistributedConfig(tp_plan="auto")}


@contextmanager
def quiet_progress_bars() -> Iterator[None]:
    """Loading and saving a checkpoint draws tqdm bars into the test log; keep them out."""
    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def forward_kwargs(model: torch.nn.Module, cache: Any = None, keep_last: int = 1) -> dict:
    """Keyword arguments for a forward that extends a KV cache, as `generate` passes them:
    the cache under this transformers' name for it, and logits for the last `keep_last`
    positions only (0: all positions)."""
    cache_kw, keep_kw = _decode_kwarg_names(type(model))
    kwargs: dict[str, Any] = {"use_cache": True}
    if keep_kw and keep_last:
        kwargs[keep_kw] = keep_last
    if cache is not None:
        kwargs[cache_kw] = cache
    return kwargs


@functools.lru_cache(maxsize=None)
def _decode_kwarg_names(model_class: type) -> tuple[str, Optional[str]]:
    """5.x calls the cache `cache=` (`past_key_values=` is deprecated); 4.x knows only
    `past_key_values=`. `logits_to_keep` (4.50+) was `num_logits_to_keep` (4.45-4.49).
    Looked up once per model class: a decode step must not pay for `inspect.signature`."""
    params = inspect.signature(model_class.forward).parameters
    cache = "cache" if "cache" in params else "past_key_values"
    keep = next((k for k in ("logits_to_keep", "num_logits_to_keep") if k in params), None)
    return cache, keep


def output_cache(output: Any) -> Any:
    """The KV cache a forward returned (`.cache` in 5.x, `.past_key_values` in 4.x), always
    as a cache object.

    A 4.x model given no cache object (`past_key_values=None`) builds a DynamicCache and
    hands it back as the legacy format, a tuple of (keys, values) per layer
    (Qwen2Model.forward's `return_legacy_cache`, transformers 4.42-4.47); it is wrapped
    here so callers meet one kind of cache on every release.
    """
    cache = getattr(output, "cache", None)
    if cache is None:
        cache = output.past_key_values
    if isinstance(cache, (tuple, list)):
        from transformers import DynamicCache

        return DynamicCache.from_legacy_cache(cache)
    return cache


def restrict_tokenizer_inputs(tokenizer: Any, model: Any) -> None:
    """Make `tokenizer(...)` return only the inputs `model.forward` takes by name.

    A tokenizer lists what it returns in `model_input_names`; transformers 4.x's
    PreTrainedTokenizerFast (the class the built-in model's tokenizer and many
    checkpoints' tokenizer_config.json name) lists `token_type_ids`, which a decoder-only
    model such as Qwen2 has no parameter for: 4.x `generate` then refuses the call ("The
    following `model_kwargs` are not used by the model: ['token_type_ids']") and `forward`
    raises TypeError. `input_ids` and `attention_mask` are always kept.
    """
    params = inspect.signature(type(model).forward).parameters
    keep = [name for name in tokenizer.model_input_names
            if name in ("input_ids", "attention_mask") or name in params]
    tokenizer.model_input_names = keep


def cache_tensors(cache: Any) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Each layer's (keys, values), [batch, kv_heads, positions, head_dim].

    5.x keeps them on `cache.layers[i].keys/.values`; 4.x on `cache.key_cache[i]` /
    `cache.value_cache[i]`.
    """
    layers = getattr(cache, "layers", None)
    if layers is not None:
        return [(layer.keys, layer.values) for layer in layers]
    return list(zip(cache.key_cache, cache.value_cache))


def cache_from_tensors(tensors: list[tuple[torch.Tensor, torch.Tensor]], config: Any) -> Any:
    """A new DynamicCache holding `tensors` (taken as they are: pass copies to keep yours)."""
    from transformers import DynamicCache

    try:
        cache = DynamicCache(config=config)
    except TypeError:  # 4.x: no config argument
        cache = DynamicCache()
    for index, (keys, values) in enumerate(tensors):
        cache.update(keys, values, index)
    return cache


def crop_cache(cache: Any, length: int) -> None:
    """Keep the first `length` positions. A negative count of positions to drop is what both
    4.x (`crop(max_length)`, negative = drop) and 5.x (negative only) accept."""
    drop = cache.get_seq_length() - length
    if drop > 0:
        cache.crop(-drop)
