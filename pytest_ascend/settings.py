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
from typing import Callable, Mapping, Optional, Sequence, Union

from pytest_ascend import numbers
from pytest_ascend.model.arithmetic import DTYPE_BYTES
from pytest_ascend.model.tiny import (
    BUILTIN_DRAFT,
    BUILTIN_MODEL,
    default_cache_dir,
    is_builtin_spec,
)
from pytest_ascend.platforms import platform_names
from pytest_ascend.platforms.selection import CardSelection, parse_card_selection
from pytest_ascend.serving.goodput import DEFAULT_SLO, Slo
from pytest_ascend.serving.load import ARRIVALS
from pytest_ascend.serving.workloads import Lengths

DTYPE_CHOICES = tuple(DTYPE_BYTES)
NO_DRAFT = "none"
_PLUGIN_SGLANG_FLAGS = ("--port", "--host")  # where the plugin finds the server it launched

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class SettingsError(ValueError):
    """A bad option value; the message names the value's source and how to fix it."""


@dataclass(frozen=True)
class OptionSpec:
    """One option: its flag, ini key, environment variable, default and how to check a value.

    `default` is the value when nothing sets the option (the one place it is written);
    `default_text` describes a default that is derived rather than fixed.
    """

    name: str
    flag: str
    help: str
    default: object = None
    default_text: Optional[str] = None
    is_flag: bool = False
    choices: Union[tuple[str, ...], Callable[[], tuple[str, ...]]] = ()  # or computed on use
    metavar: Optional[str] = None
    is_seconds: bool = False  # a positive number of seconds
    is_list: bool = False  # repeatable flag; env var and ini key hold a shell-quoted list
    is_path: bool = False  # the value may be a filesystem path
    parse: Optional[Callable[[str], object]] = None  # raises ValueError saying what is wrong

    @property
    def ini(self) -> str:
        return "ascend_" + self.name

    @property
    def env(self) -> str:
        return "PYTEST_ASCEND_" + self.name.upper()

    @property
    def dest(self) -> str:
        return "ascend_" + self.name

    def allowed(self) -> tuple[str, ...]:
        """The values a choice option accepts (empty: any)."""
        return self.choices() if callable(self.choices) else self.choices

    def help_text(self) -> str:
        """The help line, with the default said once, from the table."""
        shown = self.default_text
        if shown is None and self.default not in (None, False, ()):
            shown = str(self.default)
        return f"{self.help} (default: {shown})" if shown else self.help


def _rates(text: str) -> tuple[float, ...]:
    try:
        rates = tuple(float(item) for item in text.split(","))
    except ValueError:
        rates = ()
    if not rates or not all(rate > 0 for rate in rates):
        raise ValueError("not a comma-separated list of positive request rates (e.g. 1,2,4,8)")
    return tuple(sorted(set(rates)))


OPTIONS: tuple[OptionSpec, ...] = (
    OptionSpec(
        "device",
        "--ascend-device",
        "device under test: a platform's kind, or auto for the first platform present "
        "(npu, then cuda, then cpu)",
        default="auto",
        choices=lambda: ("auto", *platform_names()),
    ),
    OptionSpec(
        "devices",
        "--ascend-devices",
        "cards to test: all, a number N (the first N), or indices such as 0,1,3 (one card: "
        "3,); the first selected card runs the model",
        default="1",
        metavar="all|N|i,j,...",
        parse=parse_card_selection,
    ),
    OptionSpec(
        "card_tolerance",
        "--ascend-card-tolerance",
        "fail a card (or link) whose figure is more than this fraction below the median of "
        "its siblings",
        default=0.10,
        metavar="FRACTION",
        parse=numbers.fraction,
    ),
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
    ),
    OptionSpec(
        "dtype",
        "--ascend-dtype",
        "model dtype",
        default_text="the platform's: float16 on npu/cuda; float32 on cpu, where float16 "
        "matmuls are ~100x slower",
        choices=DTYPE_CHOICES,
    ),
    OptionSpec(
        "trust_remote_code",
        "--ascend-trust-remote-code",
        "allow the model directory's own Python code to run (from_pretrained trust_remote_code)",
        default=False,
        is_flag=True,
    ),
    OptionSpec(
        "run_slow",
        "--ascend-run-slow",
        "run the suite's tests marked slow (long context, long generation, sweeps)",
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
    ),
    OptionSpec(
        "expect_spec_speedup",
        "--ascend-expect-spec-speedup",
        "fail the speculative-decoding benchmark unless it beats plain greedy decoding (for "
        "real target/draft pairs, e.g. Qwen2.5-14B with Qwen2.5-0.5B; off: reported only)",
        default=False,
        is_flag=True,
    ),
    OptionSpec(
        "assert_perf",
        "--ascend-assert-perf",
        "assert performance bounds (speedups, scaling, overhead) on the built-in tiny model "
        "too; on a real model they are always asserted, on a smoke run otherwise reported",
        default=False,
        is_flag=True,
    ),
    OptionSpec(
        "watchdog",
        "--ascend-watchdog",
        "seconds a device test's call may run before the watchdog writes every report and "
        "ends the run (exit 7), even when blocked in native code; used only where "
        "pytest-timeout times nothing: otherwise the watchdog follows pytest-timeout "
        "(its timeout, marker and timeout_func_only)",
        default=1800,
        metavar="SECONDS",
        is_seconds=True,
    ),
    OptionSpec(
        "memory_interval",
        "--ascend-memory-interval",
        "seconds between samples of the memory_sampler fixture",
        default=0.05,
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
        default=False,
        is_flag=True,
    ),
    OptionSpec(
        "sglang_arg",
        "--sglang-arg",
        "extra argument for the launched server, repeatable: --sglang-arg=--tp-size "
        "--sglang-arg=2 (env/ini: one shell-quoted string)",
        default=(),
        metavar="ARG",
        is_list=True,
    ),
    OptionSpec(
        "sglang_python",
        "--sglang-python",
        "Python interpreter that has sglang installed, for --sglang-launch",
        default_text="the one running pytest",
        metavar="PATH",
        is_path=True,
    ),
    OptionSpec(
        "sglang_timeout",
        "--sglang-timeout",
        "seconds to wait for a launched server to become healthy",
        default=600,
        metavar="SECONDS",
        is_seconds=True,
    ),
    OptionSpec(
        "sglang_slo",
        "--sglang-slo",
        "latency targets of the serving sweep, per request, in ms (keys ttft_ms, tpot_ms, "
        "e2e_ms); goodput counts the requests meeting all, saturation is the highest rate "
        "whose P99s meet them (default: MLPerf Llama-2-70B Server's)",
        default=DEFAULT_SLO,
        metavar="KEY=MS,...",
        parse=Slo.parse,
    ),
    OptionSpec(
        "sglang_rates",
        "--sglang-rates",
        "request rates (req/s) the serving sweep offers in turn, until the server saturates",
        default_text="1,2,4,8,16,32,64; 4,8,16 on the built-in tiny model",
        metavar="R1,R2,...",
        parse=_rates,
    ),
    OptionSpec(
        "sglang_requests",
        "--sglang-requests",
        "requests the serving sweep sends at each rate",
        default_text="100; 24 on the built-in tiny model",
        metavar="N",
        parse=numbers.count,
    ),
    OptionSpec(
        "sglang_lengths",
        "--sglang-lengths",
        "input and output tokens of the sweep's random requests, INPUT:OUTPUT[:RANGE_RATIO] "
        "(lengths drawn from [ratio x length, length], as bench_serving's random dataset)",
        default="256:64",
        metavar="IN:OUT[:R]",
        parse=Lengths.parse,
    ),
    OptionSpec(
        "sglang_arrival",
        "--sglang-arrival",
        "inter-arrival times of the sweep's requests: poisson, constant, or burst (all at once)",
        default="poisson",
        choices=ARRIVALS,
    ),
    OptionSpec(
        "sglang_max_concurrency",
        "--sglang-max-concurrency",
        "cap on requests in flight during the sweep (a request waits for a slot)",
        default_text="no cap",
        metavar="N",
        parse=numbers.count,
    ),
    OptionSpec(
        "report_dir",
        "--ascend-report-dir",
        "directory for the box run's figures: the card table and link matrix as JSON, the "
        "link heat map as PNG",
        metavar="DIR",
        is_path=True,
    ),
    OptionSpec(
        "golden",
        "--ascend-golden",
        "compare the run with the golden outputs in DIR (greedy tokens, top-k logprobs, "
        "perplexity), recorded by `pytest-ascend golden record --out DIR` from the same model",
        metavar="DIR",
        is_path=True,
    ),
    OptionSpec(
        "golden_slack",
        "--ascend-golden-slack",
        "multiply the golden comparison's dtype-derived bounds by FACTOR (docs/metrics.md), "
        "for a model whose rounding was measured to need it",
        default="1",
        metavar="FACTOR",
        parse=numbers.positive_factor,
    ),
    OptionSpec(
        "results_log",
        "--ascend-results-log",
        "append one JSON line per finished test (outcome, duration, metrics) to PATH, flushed "
        "at once, so a crash or a kill mid-run keeps every finished result",
        metavar="PATH",
        is_path=True,
    ),
)


@dataclass(frozen=True)
class AscendSettings:
    """The resolved settings of one session, with where each value came from. Made only by
    `resolve_settings`, which takes every default from OPTIONS."""

    device: str
    devices: CardSelection
    card_tolerance: float
    model: str
    draft_model: Optional[str]
    dtype: Optional[str]
    trust_remote_code: bool
    run_slow: bool
    cache: Path
    results_log: Optional[Path]
    report_dir: Optional[Path]
    golden: Optional[Path]
    golden_slack: float
    expect_spec_speedup: bool
    assert_perf: bool
    watchdog: float
    memory_interval: float
    sglang_url: Optional[str]
    sglang_launch: bool
    sglang_args: tuple[str, ...]
    sglang_python: Optional[str]
    sglang_timeout: float
    sglang_slo: Slo
    sglang_rates: Optional[tuple]
    sglang_requests: Optional[int]
    sglang_lengths: Lengths
    sglang_arrival: str
    sglang_max_concurrency: Optional[int]
    sources: Mapping[str, str] = field(default_factory=dict)

    @property
    def builtin_model(self) -> bool:
        return is_builtin_spec(self.model)

    def source_of(self, name: str) -> str:
        return self.sources.get(name, "default")

    @property
    def given_on_command_line(self) -> bool:
        """Whether this invocation asked for pytest-ascend itself. An environment variable
        does not count: it may sit in an operator's profile and reach every project's pytest."""
        return any(source.startswith("command line") for source in self.sources.values())


def space_separated_paths(args: Sequence[str]) -> list[tuple[str, str]]:
    """(flag, value) of every path-valued option given as `--flag VALUE` whose value is an
    existing path. pytest reads its rootdir and ini file before plugins register their
    options, so it takes such a value for a test path and may pick its rootdir from it."""
    flags = {spec.flag for spec in OPTIONS if spec.is_path}
    return [(flag, value) for flag, value in zip(args, args[1:])
            if flag in flags and os.path.exists(value)]


RawGetter = Callable[[OptionSpec], Optional[object]]


def resolve_settings(
    cli: RawGetter, ini: RawGetter, environ: Optional[Mapping[str, str]] = None
) -> AscendSettings:
    """Combine command line, environment and ini values (in that precedence) into settings.

    `cli(spec)` returns the parsed command-line value or None when the flag was not given;
    `ini(spec)` returns the ini string or None/"" when the key is absent.
    """
    environ = os.environ if environ is None else environ
    values: dict[str, object] = {
        spec.name: spec.parse(spec.default) if spec.parse and isinstance(spec.default, str)
        else spec.default for spec in OPTIONS}
    sources: dict[str, str] = {}
    for spec in OPTIONS:
        raw, source = _first_given(spec, cli, ini, environ)
        if raw is None:
            continue
        values[spec.name] = _convert(spec, raw, source)
        sources[spec.name] = source

    model = str(values["model"])
    if "draft_model" in sources:
        draft = str(values["draft_model"])
    else:
        draft = BUILTIN_DRAFT if is_builtin_spec(model) else NO_DRAFT
    if draft == BUILTIN_DRAFT and not is_builtin_spec(model):
        raise SettingsError(
            f"--ascend-draft-model tiny-draft ({sources.get('draft_model', 'default')}) only "
            f"pairs with the built-in model; give a draft checkpoint that shares the tokenizer "
            f"of {model}, or 'none'"
        )
    for arg in values["sglang_arg"]:  # type: ignore[union-attr]
        flag = str(arg).split("=", 1)[0]
        if flag in _PLUGIN_SGLANG_FLAGS:
            raise SettingsError(
                f"--sglang-arg {arg} ({sources['sglang_arg']}): the plugin chooses {flag} of "
                f"the server it launches (127.0.0.1, a free port) and polls it there; drop "
                f"it, or start the server yourself and pass --sglang-url"
            )
    cache, results_log, report_dir = values["cache"], values["results_log"], values["report_dir"]
    golden = values["golden"]
    return AscendSettings(
        device=str(values["device"]),
        devices=values["devices"],  # type: ignore[arg-type]
        card_tolerance=float(values["card_tolerance"]),  # type: ignore[arg-type]
        model=model,
        draft_model=None if draft == NO_DRAFT else draft,
        dtype=_optional_str(values["dtype"]),
        trust_remote_code=bool(values["trust_remote_code"]),
        run_slow=bool(values["run_slow"]),
        cache=Path(str(cache)).expanduser() if cache else default_cache_dir(),
        results_log=Path(str(results_log)).expanduser() if results_log else None,
        report_dir=Path(str(report_dir)).expanduser() if report_dir else None,
        golden=Path(str(golden)).expanduser() if golden else None,
        golden_slack=float(values["golden_slack"]),  # type: ignore[arg-type]
        expect_spec_speedup=bool(values["expect_spec_speedup"]),
        assert_perf=bool(values["assert_perf"]),
        watchdog=float(values["watchdog"]),  # type: ignore[arg-type]
        memory_interval=float(values["memory_interval"]),  # type: ignore[arg-type]
        sglang_url=_optional_str(values["sglang_url"]),
        sglang_launch=bool(values["sglang_launch"]),
        sglang_args=tuple(values["sglang_arg"]),  # type: ignore[arg-type]
        sglang_python=_optional_str(values["sglang_python"]),
        sglang_timeout=float(values["sglang_timeout"]),  # type: ignore[arg-type]
        sglang_slo=values["sglang_slo"],  # type: ignore[arg-type]
        sglang_rates=values["sglang_rates"],  # type: ignore[arg-type]
        sglang_requests=values["sglang_requests"],  # type: ignore[arg-type]
        sglang_lengths=values["sglang_lengths"],  # type: ignore[arg-type]
        sglang_arrival=str(values["sglang_arrival"]),
        sglang_max_concurrency=values["sglang_max_concurrency"],  # type: ignore[arg-type]
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
    if spec.allowed() and text not in spec.allowed():
        raise SettingsError(
            f"{spec.flag}: {text!r} from {source} is not one of {', '.join(spec.allowed())}"
        )
    if not text:
        raise SettingsError(f"{spec.flag}: empty value from {source}; remove it or give a value")
    if spec.parse is not None:
        try:
            return spec.parse(text)
        except ValueError as exc:
            raise SettingsError(f"{spec.flag}: {text!r} from {source}: {exc}") from None
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
