"""The options that choose the model under test, its draft and where built-in models are built."""

from __future__ import annotations

from typing import Mapping

from pytest_ascend.model.tiny import (
    BUILTIN_DRAFT,
    BUILTIN_MODEL,
    default_cache_dir,
    is_builtin_spec,
)
from pytest_ascend.options import OptionGroup, OptionSpec, SettingsError, path

NO_DRAFT = "none"


def _draft_default(values: Mapping[str, object]) -> str:
    return BUILTIN_DRAFT if is_builtin_spec(str(values["model"])) else NO_DRAFT


def _draft(value: object) -> object:
    return None if value == NO_DRAFT else str(value)


def _tiny_draft_pairs_with_tiny(values: Mapping[str, object], sources: Mapping[str, str]) -> None:
    model = str(values["model"])
    if values["draft_model"] == BUILTIN_DRAFT and not is_builtin_spec(model):
        raise SettingsError(
            f"--ascend-draft-model tiny-draft ({sources.get('draft_model', 'default')}) only "
            f"pairs with the built-in model; give a draft checkpoint that shares the tokenizer "
            f"of {model}, or 'none'")


MODEL_OPTIONS = OptionGroup("model under test", (
    OptionSpec(
        "model",
        "--ascend-model",
        "local checkpoint directory loaded with from_pretrained, or 'tiny' for the built-in "
        "model ('tiny:num_hidden_layers=2,hidden_size=64' changes its recipe)",
        default=BUILTIN_MODEL,
        metavar="PATH|tiny",
        is_path=True,
    ),
    OptionSpec(
        "draft_model",
        "--ascend-draft-model",
        "draft model for speculative decoding: a checkpoint directory, 'tiny-draft' or 'none'",
        default_text="tiny-draft with the built-in model, else none",
        metavar="PATH|tiny-draft|none",
        is_path=True,
        derive=_draft_default,
        final=_draft,
    ),
    OptionSpec(
        "trust_remote_code",
        "--ascend-trust-remote-code",
        "allow the model directory's own Python code to run (from_pretrained trust_remote_code)",
        default=False,
        is_flag=True,
    ),
    OptionSpec(
        "cache",
        "--ascend-cache",
        "directory for the built-in models",
        default_text="$XDG_CACHE_HOME/pytest-ascend",
        metavar="DIR",
        is_path=True,
        derive=lambda values: default_cache_dir(),
        final=path,
    ),
), checks=(_tiny_draft_pairs_with_tiny,))
