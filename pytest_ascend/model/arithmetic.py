"""What a decoder-only model's config implies, computed in one place: bytes per element,
head dimension, KV heads, KV-cache bytes per token and parameter count.

Every function takes a transformers config object or a config.json dict alike, so a
serving plan can be made from a checkpoint's config without loading it, and the same
arithmetic checks a loaded model. Qwen2.5-14B (48 layers, hidden 5120, 40 / 8 heads,
vocabulary 152064, untied) is the worked example: 14.77 B parameters, 192 KiB of float16
KV per token.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

# Bytes per element of the dtypes the suite runs models in.
DTYPE_BYTES = {"float16": 2, "bfloat16": 2, "float32": 4}


# Tensor-parallel sizes a node offers: every card count that splits an Atlas 800T or a DGX
# evenly.
TP_SIZES = (1, 2, 4, 8)


def config_value(config: Any, name: str, default: Any = None) -> Any:
    """`name` from a config object or a config.json dict; `default` when absent or null."""
    value = config.get(name) if isinstance(config, Mapping) else getattr(config, name, None)
    return default if value is None else value


def attention_heads(config: Any) -> int:
    return int(config_value(config, "num_attention_heads"))


def kv_heads(config: Any) -> int:
    """Key/value heads: fewer than the attention heads under grouped-query attention."""
    return int(config_value(config, "num_key_value_heads", attention_heads(config)))


def head_dim(config: Any) -> int:
    """Per-head width: the config's own `head_dim` where it sets one, else hidden / heads."""
    return int(config_value(config, "head_dim",
                            config_value(config, "hidden_size") // attention_heads(config)))


def kv_bytes_per_token(config: Any, element_bytes: int) -> int:
    """KV-cache bytes one position takes in one sequence: K and V, every layer, every KV
    head. Qwen2.5-14B in float16: 2 x 48 x 8 x 128 x 2 = 192 KiB."""
    layers = int(config_value(config, "num_hidden_layers"))
    return 2 * layers * kv_heads(config) * head_dim(config) * element_bytes


def kv_bytes_per_card(config: Any, element_bytes: int, tp_size: int) -> int:
    """KV-cache bytes one position takes on each of `tp_size` cards: the KV heads split
    among them, each card holding at least one (with more cards than KV heads, replicas)."""
    groups = kv_heads(config)
    return kv_bytes_per_token(config, element_bytes) * max(1, math.ceil(groups / tp_size)) \
        // groups


def parameter_count(config: Any) -> int:
    """Parameters of a Qwen2/Llama-style decoder: embeddings, attention (q/k/v, with bias
    for qwen2, and o), gated MLP, norms, and an untied vocabulary projection."""
    hidden = int(config_value(config, "hidden_size"))
    q, kv = attention_heads(config) * head_dim(config), kv_heads(config) * head_dim(config)
    bias = (q + 2 * kv) if config_value(config, "model_type", "qwen2") == "qwen2" else 0
    attention = hidden * q + 2 * hidden * kv + q * hidden + bias
    per_layer = attention + 3 * hidden * int(config_value(config, "intermediate_size")) + 2 * hidden
    tied = bool(config_value(config, "tie_word_embeddings", False))
    vocab = int(config_value(config, "vocab_size"))
    layers = int(config_value(config, "num_hidden_layers"))
    return vocab * hidden * (1 if tied else 2) + layers * per_layer + hidden


def split_sizes(heads: int) -> tuple[int, ...]:
    """The tensor-parallel sizes that split `heads` attention heads evenly."""
    return tuple(tp for tp in TP_SIZES if heads % tp == 0)
