"""The built-in tiny model: a real Qwen2-architecture checkpoint, built offline, deterministically.

No model hub is reachable from CI or a first run, yet the suite must exercise the very code
path a real checkpoint takes (from_pretrained on a directory, a byte-level BPE tokenizer, the
ChatML template, KV caches). So the plugin builds a small checkpoint itself: a tokenizer
trained on a bundled zh/en/code corpus and a Qwen2 model with seeded random weights, written
with `save_pretrained` into a cache directory named by a hash of its recipe. The same recipe
gives byte-identical files; a crash mid-build leaves nothing half-written (build in a temporary
directory, then one rename).

Random weights are scaled up (std 0.1 rather than 0.02, untied embeddings): with the usual
initialisation a tiny random model repeats one token forever, and every equality test between
two generation paths would then pass without comparing anything.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Callable, Optional

BUILTIN_MODEL, BUILTIN_DRAFT = "tiny", "tiny-draft"
# Bump when the builder changes what it writes for an unchanged recipe.
BUILDER_VERSION = 1
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
PAD_TOKEN, EOS_TOKEN = "<|endoftext|>", "<|im_end|>"
DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."

# Qwen's ChatML layout: a default system turn when none is given, then
# <|im_start|>role\ncontent<|im_end|>\n per message, and the assistant header to generate.
CHAT_TEMPLATE = (
    "{%- if not messages or messages[0]['role'] != 'system' %}"
    "{{- '<|im_start|>system\\n" + DEFAULT_SYSTEM_PROMPT + "<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


class RecipeError(ValueError):
    """A `tiny:...` spec that does not describe a buildable model."""


@dataclass(frozen=True)
class TinyRecipe:
    """Everything that determines the built files. Its hash names the cache directory."""

    vocab_size: int = 3072
    hidden_size: int = 128
    intermediate_size: int = 384
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    max_position_embeddings: int = 16384
    rope_theta: float = 1_000_000.0
    init_std: float = 0.1
    # Scales the vocabulary projection's eos row: above ~2, eos becomes the argmax mid-answer
    # on most seed prompts, as it does at the end of a real chat model's answers (a model to
    # check that every greedy path treats eos alike).
    eos_logit_scale: float = 1.0
    seed: int = 0

    def validate(self) -> None:
        if self.hidden_size % self.num_attention_heads:
            raise RecipeError(
                f"hidden_size {self.hidden_size} is not divisible by num_attention_heads "
                f"{self.num_attention_heads}"
            )
        if self.num_attention_heads % self.num_key_value_heads:
            raise RecipeError(
                f"num_attention_heads {self.num_attention_heads} is not a multiple of "
                f"num_key_value_heads {self.num_key_value_heads}"
            )
        if (self.hidden_size // self.num_attention_heads) % 2:
            raise RecipeError("head dimension (hidden_size / num_attention_heads) must be even")
        if self.vocab_size < 512:
            raise RecipeError("vocab_size must be at least 512 (256 byte tokens plus merges)")
        for f in dataclasses.fields(self):
            if f.name != "seed" and getattr(self, f.name) <= 0:
                raise RecipeError(f"{f.name} must be positive")

    def draft(self) -> "TinyRecipe":
        """The draft sibling: one layer, same tokenizer (same vocab recipe), another seed."""
        return dataclasses.replace(self, num_hidden_layers=1, seed=self.seed + 1)

    def key(self) -> str:
        """Hash of everything the written bytes depend on: the recipe, the corpus, the
        builder, and the torch / transformers versions (config.json records the latter)."""
        payload = {
            "builder": BUILDER_VERSION,
            "recipe": dataclasses.asdict(self),
            "corpus": hashlib.sha256(corpus_text().encode("utf-8")).hexdigest(),
            "torch": metadata.version("torch"),
            "transformers": metadata.version("transformers"),
        }
        blob = json.dumps(payload, sort_keys=True).encode("utf-8")
        return hashlib.sha256(blob).hexdigest()[:16]


def parse_spec(spec: str, base: Optional[str] = None) -> TinyRecipe:
    """Recipe for 'tiny', 'tiny:k=v,...', 'tiny-draft' or 'tiny-draft:k=v,...'.

    A draft takes its base model's recipe (so the two share one tokenizer), then one layer.
    """
    name, _, overrides = spec.partition(":")
    if name == BUILTIN_MODEL:
        recipe = TinyRecipe()
    elif name == BUILTIN_DRAFT:
        recipe = parse_spec(base, None).draft() if base and base != spec else TinyRecipe().draft()
    else:
        raise RecipeError(f"{spec!r} is not a built-in model (tiny, tiny-draft)")
    if overrides:
        recipe = dataclasses.replace(recipe, **_parse_overrides(spec, overrides))
    recipe.validate()
    return recipe


def _parse_overrides(spec: str, text: str) -> dict[str, object]:
    fields = {f.name: f.type for f in dataclasses.fields(TinyRecipe)}
    out: dict[str, object] = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in fields:
            raise RecipeError(
                f"{spec!r}: {item!r} is not key=value with a key from {', '.join(fields)}"
            )
        try:
            out[key] = float(value) if fields[key] == "float" else int(value)
        except ValueError:
            raise RecipeError(f"{spec!r}: {key}={value!r} is not a number") from None
    return out


def is_builtin_spec(spec: str) -> bool:
    """True for tiny, tiny-draft and either with ':<recipe overrides>'; a directory that
    happens to be called tiny is passed as ./tiny."""
    return spec.split(":", 1)[0] in (BUILTIN_MODEL, BUILTIN_DRAFT)


def default_cache_dir() -> Path:
    """Where built-in models are built: $XDG_CACHE_HOME/pytest-ascend (~/.cache/...)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "pytest-ascend"


def corpus_text() -> str:
    return (Path(__file__).parents[1] / "data" / "tiny_corpus.txt").read_text("utf-8")


def ensure_built(
    recipe: TinyRecipe,
    cache_dir: Path,
    name: str = BUILTIN_MODEL,
    progress: Optional[Callable[[str], None]] = None,
) -> Path:
    """The directory of the model for `recipe`, building it first if the cache lacks it."""
    final = built_dir(recipe, cache_dir, name)
    models_dir = final.parent
    if final.is_dir():
        return final
    if progress is not None:
        progress(f"building the built-in model {name} into {final} (once per recipe)")
    models_dir.mkdir(parents=True, exist_ok=True)
    _remove_stale_builds(models_dir)
    staging = models_dir / f".building-{final.name}-{uuid.uuid4().hex[:8]}"
    try:
        build_checkpoint(recipe, staging)
        try:
            os.rename(staging, final)
        except OSError:
            if not final.is_dir():  # not a lost race with another builder: a real failure
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


def built_dir(recipe: TinyRecipe, cache_dir: Path, name: str = BUILTIN_MODEL) -> Path:
    """Where the model for `recipe` is (or will be) in the cache."""
    return Path(cache_dir) / "models" / f"{name}-{recipe.key()}"


def _remove_stale_builds(models_dir: Path, older_than_s: float = 3600.0) -> None:
    """Staging directories left by a killed build (a crash inside Python cleans its own)."""
    now = time.time()
    for entry in models_dir.glob(".building-*"):
        try:
            if now - entry.stat().st_mtime > older_than_s:
                shutil.rmtree(entry, ignore_errors=True)
        except OSError:
            continue


def build_checkpoint(recipe: TinyRecipe, out_dir: Path) -> None:
    """Write tokenizer, config, generation config and weights for `recipe` into `out_dir`."""
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    from pytest_ascend.model.hf_compat import quiet_progress_bars

    out_dir.mkdir(parents=True)
    tokenizer = build_tokenizer(recipe.vocab_size)
    pad_id = tokenizer.convert_tokens_to_ids(PAD_TOKEN)
    eos_id = tokenizer.convert_tokens_to_ids(EOS_TOKEN)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=recipe.hidden_size,
        intermediate_size=recipe.intermediate_size,
        num_hidden_layers=recipe.num_hidden_layers,
        num_attention_heads=recipe.num_attention_heads,
        num_key_value_heads=recipe.num_key_value_heads,
        max_position_embeddings=recipe.max_position_embeddings,
        rope_theta=recipe.rope_theta,
        tie_word_embeddings=False,
        use_sliding_window=False,
        bos_token_id=None,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
    )
    model = Qwen2ForCausalLM(config)
    generator = torch.Generator().manual_seed(recipe.seed)
    with torch.no_grad():
        for name, param in sorted(model.named_parameters()):
            if name.endswith("norm.weight"):
                param.fill_(1.0)
            else:
                param.copy_(torch.randn(param.shape, generator=generator) * recipe.init_std)
        model.lm_head.weight[eos_id] *= recipe.eos_logit_scale
    model.generation_config = GenerationConfig(
        eos_token_id=[eos_id, pad_id], pad_token_id=pad_id, do_sample=False
    )
    with quiet_progress_bars():
        model.save_pretrained(out_dir)
        tokenizer.save_pretrained(out_dir)
    recipe_file = {"builder": BUILDER_VERSION, "recipe": dataclasses.asdict(recipe)}
    (out_dir / "pytest_ascend_recipe.json").write_text(json.dumps(recipe_file, indent=2) + "\n")


def build_tokenizer(vocab_size: int):
    """A byte-level BPE tokenizer trained on the bundled corpus, with ChatML specials."""
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        trainers,
    )
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.normalizer = normalizers.NFC()
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(corpus_text().splitlines(), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        additional_special_tokens=[EOS_TOKEN, "<|im_start|>"],
        padding_side="left",
        chat_template=CHAT_TEMPLATE,
        model_max_length=1 << 20,
        clean_up_tokenization_spaces=False,
    )
