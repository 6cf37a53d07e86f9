"""The suite's settings: every option, settable four ways, resolved one way.

Every option has a command-line flag, an ini key and an environment variable, resolved with
one precedence: command line > environment > ini file > default (the same order
pytest-timeout documents). A bad value is reported with *where* it came from, because a
nightly job that sets `PYTEST_ASCEND_DEVICE=gpu` in a forgotten CI file must be told so, not
shown an argparse usage dump.

Each sub-package owns its options (`<package>/options.py`, an OptionGroup); this module
gathers the groups, and resolves any option from its spec alone: adding an option is one
OptionSpec in its group. The plugin's own options (gating, the watchdog) are the group here.

Nothing here imports torch or pytest: the plugin registers these options and hands the raw
values over; this module only validates and combines them.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Mapping, Optional, Sequence

from pytest_ascend.accuracy.options import ACCURACY_OPTIONS
from pytest_ascend.box.options import BOX_OPTIONS
from pytest_ascend.measure.options import MEASURE_OPTIONS
from pytest_ascend.model.options import MODEL_OPTIONS
from pytest_ascend.model.tiny import is_builtin_spec
from pytest_ascend.numerics.options import NUMERICS_OPTIONS
from pytest_ascend.options import OptionGroup, OptionSpec, SettingsError
from pytest_ascend.platforms.options import DEVICE_OPTIONS
from pytest_ascend.profiling.options import PROFILE_OPTIONS
from pytest_ascend.reports.options import REPORT_OPTIONS
from pytest_ascend.serving.options import SGLANG_OPTIONS
from pytest_ascend.soak.options import SOAK_OPTIONS
from pytest_ascend.telemetry.options import TELEMETRY_OPTIONS

__all__ = ["GROUPS", "OPTIONS", "AscendSettings", "OptionSpec", "SettingsError",
           "resolve_settings", "space_separated_paths"]

SESSION_OPTIONS = OptionGroup("the session", (
    OptionSpec(
        "run_slow",
        "--ascend-run-slow",
        "run the suite's tests marked slow (long context, long generation, sweeps)",
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
))

GROUPS: tuple[OptionGroup, ...] = (
    DEVICE_OPTIONS, MODEL_OPTIONS, SESSION_OPTIONS, MEASURE_OPTIONS, BOX_OPTIONS,
    NUMERICS_OPTIONS, ACCURACY_OPTIONS, REPORT_OPTIONS, SGLANG_OPTIONS, TELEMETRY_OPTIONS,
    SOAK_OPTIONS, PROFILE_OPTIONS,
)
OPTIONS: tuple[OptionSpec, ...] = tuple(spec for group in GROUPS for spec in group.options)


class AscendSettings:
    """The resolved settings of one session, with where each value came from: one attribute
    per option, named as its spec, in the type its spec settles on. Made only by
    `resolve_settings`, and read-only."""

    def __init__(self, values: Mapping[str, object], sources: Mapping[str, str]) -> None:
        object.__setattr__(self, "_values", dict(values))
        object.__setattr__(self, "sources", dict(sources))

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["_values"][name]
        except KeyError:
            raise AttributeError(f"pytest-ascend has no option named {name!r}") from None

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("settings are read-only; resolve_settings makes new ones")

    def __repr__(self) -> str:
        return f"AscendSettings({self._values!r})"

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
    """Combine command line, environment and ini values (in that precedence) into settings,
    in one step: given values are checked, derived defaults computed from them, the groups'
    cross-checks run, and every value settles into its type.

    `cli(spec)` returns the parsed command-line value or None when the flag was not given;
    `ini(spec)` returns the ini string or None/"" when the key is absent.
    """
    environ = os.environ if environ is None else environ
    values: dict[str, object] = {}
    sources: dict[str, str] = {}
    for spec in OPTIONS:
        raw, source = _first_given(spec, cli, ini, environ)
        if raw is None:
            values[spec.name] = spec.default_value()
        else:
            values[spec.name] = spec.convert(raw, source)
            sources[spec.name] = source
    for spec in OPTIONS:
        if spec.derive is not None and spec.name not in sources:
            values[spec.name] = spec.derive(values)
    for group in GROUPS:
        for check in group.checks:
            check(values, sources)
    return AscendSettings({spec.name: spec.settle(values[spec.name]) for spec in OPTIONS},
                          sources)


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
