"""The suite's settings: one table of options, each settable four ways.

Every option has a command-line flag, an ini key and an environment variable, resolved with
one precedence: command line > environment > ini file > default (the same order
pytest-timeout documents). A bad value is reported with *where* it came from, because a
nightly job that sets `PYTEST_ASCEND_DEVICE=gpu` in a forgotten CI file must be told so, not
shown an argparse usage dump.

Nothing here imports torch or pytest: the plugin registers these options and hands the raw
values over; this module only validates and combines them.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Optional

DEVICE_CHOICES = ("auto", "npu", "cuda", "cpu")
DTYPE_CHOICES = ("float16", "bfloat16", "float32")
BUILTIN_MODEL = "tiny"
BUILTIN_DRAFT = "tiny-draft"
NO_DRAFT = "none"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class SettingsError(ValueError):
    """A bad option value; the message names the value's source and how to fix it."""


@dataclass(frozen=True)
class OptionSpec:
    """One option: its flag, ini key, environment variable and how to check a value."""

    name: str
    flag: str
    help: str
    is_flag: bool = False
    choices: tuple[str, ...] = ()
    metavar: Optional[str] = None
    is_seconds: bool = False  # a positive number of seconds
    is_list: bool = False  # repeatable flag; env var and ini key hold a shell-quoted list

    @property
    def ini(self) -> str:
        return "ascend_" + self.name

    @property
    def env(self) -> str:
        return "PYTEST_ASCEND_" + self.name.upper()

    @property
    def dest(self) -> str:
        return "ascend_" + self.name


OPTIONS: tuple[OptionSpec, ...] = (
    OptionSpec(
        "device",
        "--ascend-device",
        "device under test; auto picks npu, then cuda, then cpu (default: auto)",
        choices=DEVICE_CHOICES,
    ),
    OptionSpec(
        "model",
        "--ascend-model",
        "local checkpoint directory loaded with from_pretrained, or 'tiny' for the built-in "
        "model ('tiny:num_hidden_layers=2,hidden_size=64' changes its recipe) (default: tiny)",
        metavar="PATH|tiny",
    ),
    OptionSpec(
        "draft_model",
        "--ascend-draft-model",
        "draft model for speculative decoding: a checkpoint directory, 'tiny-draft' or 'none' "
        "(default: tiny-draft with the built-in model, else none)",
        metavar="PATH|tiny-draft|none",
    ),
    OptionSpec(
        "dtype",
        "--ascend-dtype",
        "model dtype (default: float16 on npu/cuda; float32 on cpu, where float16 matmuls "
        "are ~100x slower)",
        choices=DTYPE_CHOICES,
    ),
    OptionSpec(
        "trust_remote_code",
        "--ascend-trust-remote-code",
        "allow the model directory's own Python code to run (from_pretrained trust_remote_code)",
        is_flag=True,
    ),
    OptionSpec(
        "run_slow",
        "--ascend-run-slow",
        "run tests marked slow (long context, long generation, sweeps)",
        is_flag=True,
    ),
    OptionSpec(
        "cache",
        "--ascend-cache",
        "directory for the built-in models (default: $XDG_CACHE_HOME/pytest-ascend)",
        metavar="DIR",
    ),
    OptionSpec(
        "expect_spec_speedup",
        "--ascend-expect-spec-speedup",
        "fail the speculative-decoding benchmark unless it beats plain greedy decoding (for "
        "real target/draft pairs, e.g. Qwen2.5-14B with Qwen2.5-0.5B; off: reported only)",
        is_flag=True,
    ),
    OptionSpec(
        "memory_interval",
        "--ascend-memory-interval",
        "seconds between samples of the memory_sampler fixture (default: 0.05)",
        metavar="SECONDS",
        is_seconds=True,
    ),
    OptionSpec(
        "sglang_url",
        "--sglang-url",
        "base URL of a running SGLang server to test (tests marked sglang)",
        metavar="URL",
    ),
    OptionSpec(
        "sglang_launch",
        "--sglang-launch",
        "start an SGLang server for the session's model on the device under test "
        "(127.0.0.1, a free port; stopped with its whole process tree at session end)",
        is_flag=True,
    ),
    OptionSpec(
        "sglang_arg",
        "--sglang-arg",
        "extra argument for the launched server, repeatable: --sglang-arg=--tp-size "
        "--sglang-arg=2 (env/ini: one shell-quoted string)",
        metavar="ARG",
        is_list=True,
    ),
    OptionSpec(
        "sglang_python",
        "--sglang-python",
        "Python interpreter that has sglang installed, for --sglang-launch "
        "(default: the one running pytest)",
        metavar="PATH",
    ),
    OptionSpec(
        "sglang_timeout",
        "--sglang-timeout",
        "seconds to wait for a launched server to become healthy (default: 600)",
        metavar="SECONDS",
        is_seconds=True,
    ),
    OptionSpec(
        "results_log",
        "--ascend-results-log",
        "append one JSON line per finished test (outcome, duration, metrics) to PATH, flushed "
        "at once, so a crash or a kill mid-run keeps every finished result",
        metavar="PATH",
    ),
)


@dataclass(frozen=True)
class AscendSettings:
    """The resolved settings of one session, with where each value came from."""

    device: str = "auto"
    model: str = BUILTIN_MODEL
    draft_model: Optional[str] = BUILTIN_DRAFT
    dtype: Optional[str] = None
    trust_remote_code: bool = False
    run_slow: bool = False
    cache: Path = field(default_factory=lambda: default_cache_dir())
    results_log: Optional[Path] = None
    expect_spec_speedup: bool = False
    memory_interval: float = 0.05
    sglang_url: Optional[str] = None
    sglang_launch: bool = False
    sglang_args: tuple[str, ...] = ()
    sglang_python: Optional[str] = None
    sglang_timeout: float = 600.0
    sources: Mapping[str, str] = field(default_factory=dict)

    @property
    def builtin_model(self) -> bool:
        return is_builtin_spec(self.model)

    def source_of(self, name: str) -> str:
        return self.sources.get(name, "default")


def is_builtin_spec(spec: str) -> bool:
    """True for tiny, tiny-draft and either with ':<recipe overrides>'; a directory that
    happens to be called tiny is passed as ./tiny."""
    return spec.split(":", 1)[0] in (BUILTIN_MODEL, BUILTIN_DRAFT)


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "pytest-ascend"


def default_dtype(device_kind: str) -> str:
    """float16 is the accelerator default (what the Atlas suite validates); on a CPU it is
    emulated and ~100x slower than float32, so a CPU smoke run uses float32 unless told."""
    return "float32" if device_kind == "cpu" else "float16"


RawGetter = Callable[[OptionSpec], Optional[object]]


def resolve_settings(
    cli: RawGetter, ini: RawGetter, environ: Optional[Mapping[str, str]] = None
) -> AscendSettings:
    """Combine command line, environment and ini values (in that precedence) into settings.

    `cli(spec)` returns the parsed command-line value or None when the flag was not given;
    `ini(spec)` returns the ini string or None/"" when the key is absent.
    """
    environ = os.environ if environ is None else environ
    values: dict[str, object] = {}
    sources: dict[str, str] = {}
    for spec in OPTIONS:
        raw, source = _first_given(spec, cli, ini, environ)
        if raw is None:
            continue
        values[spec.name] = _convert(spec, raw, source)
        sources[spec.name] = source

    model = str(values.get("model", BUILTIN_MODEL))
    if "draft_model" in values:
        draft = str(values["draft_model"])
    else:
        draft = BUILTIN_DRAFT if is_builtin_spec(model) else NO_DRAFT
    if draft == BUILTIN_DRAFT and not is_builtin_spec(model):
        raise SettingsError(
            f"--ascend-draft-model tiny-draft ({sources.get('draft_model', 'default')}) only "
            f"pairs with the built-in model; give a draft checkpoint that shares the tokenizer "
            f"of {model}, or 'none'"
        )
    cache, results_log = values.get("cache"), values.get("results_log")
    return AscendSettings(
        device=str(values.get("device", "auto")),
        model=model,
        draft_model=None if draft == NO_DRAFT else draft,
        dtype=values.get("dtype"),  # type: ignore[arg-type]
        trust_remote_code=bool(values.get("trust_remote_code", False)),
        run_slow=bool(values.get("run_slow", False)),
        cache=Path(str(cache)).expanduser() if cache else default_cache_dir(),
        results_log=Path(str(results_log)).expanduser() if results_log else None,
        expect_spec_speedup=bool(values.get("expect_spec_speedup", False)),
        memory_interval=float(values.get("memory_interval", 0.05)),  # type: ignore[arg-type]
        sglang_url=_optional_str(values.get("sglang_url")),
        sglang_launch=bool(values.get("sglang_launch", False)),
        sglang_args=tuple(values.get("sglang_arg", ())),  # type: ignore[arg-type]
        sglang_python=_optional_str(values.get("sglang_python")),
        sglang_timeout=float(values.get("sglang_timeout", 600.0)),  # type: ignore[arg-type]
        sources=sources,
    )


def _optional_str(value: object) -> Optional[str]:
    return None if value is None else str(value)


def _first_given(
    spec: OptionSpec, cli: RawGetter, ini: RawGetter, environ: Mapping[str, str]
) -> tuple[Optional[object], str]:
    value = cli(spec)
    if value is not None:
        return value, f"command line {spec.flag}"
    if spec.env in environ:
        return environ[spec.env], f"environment variable {spec.env}"
    value = ini(spec)
    if value not in (None, ""):
        return value, f"ini key {spec.ini}"
    return None, "default"


def _convert(spec: OptionSpec, raw: object, source: str) -> object:
    if spec.is_list:
        if isinstance(raw, (list, tuple)):
            return tuple(str(item) for item in raw)
        try:
            return tuple(shlex.split(str(raw)))
        except ValueError as exc:
            raise SettingsError(f"{spec.flag}: {raw!r} from {source} is not a shell-quoted "
                                f"list ({exc})") from None
    if spec.is_flag:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise SettingsError(
            f"{spec.flag}: {raw!r} from {source} is not a boolean; use 1/0, true/false or yes/no"
        )
    text = str(raw).strip()
    if spec.choices and text not in spec.choices:
        raise SettingsError(
            f"{spec.flag}: {text!r} from {source} is not one of {', '.join(spec.choices)}"
        )
    if not text:
        raise SettingsError(f"{spec.flag}: empty value from {source}; remove it or give a value")
    if spec.is_seconds:
        try:
            seconds = float(text)
        except ValueError:
            seconds = float("nan")
        if not seconds > 0:
            raise SettingsError(
                f"{spec.flag}: {text!r} from {source} is not a positive number of seconds"
            )
        return seconds
    return text
