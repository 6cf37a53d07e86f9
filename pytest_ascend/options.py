"""An option of pytest-ascend, and how one raw value of it becomes a setting.

Each sub-package declares the options it owns as an OptionGroup (`<package>/options.py`, as
pytest-benchmark's `add_*_options` do); settings.py gathers them and resolves every option
the same way. Adding an option is one OptionSpec in its group: the plugin registers it, the
settings resolve and type it, `--help` and docs/options.md describe it, from that one entry.

Nothing here imports torch or pytest.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Optional, Union

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class SettingsError(ValueError):
    """A bad option value; the message names the value's source and how to fix it."""


def path(value: object) -> Optional[Path]:
    """A `final` for options whose value is a path on this machine (~ expanded)."""
    return None if value is None else Path(str(value)).expanduser()


@dataclass(frozen=True)
class OptionSpec:
    """One option: its flag, ini key, environment variable, default and how to check a value.

    `default` is the value when nothing sets the option (the one place it is written);
    `derive` computes a default from the other options' values instead (`default_text` says
    how, for --help); `final` turns the checked value into the setting's type.
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
    derive: Optional[Callable[[Mapping[str, object]], object]] = None
    final: Optional[Callable[[object], object]] = None

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

    def default_value(self) -> object:
        """The default, read as a given value would be (a "1" parsed like one typed)."""
        if self.parse is not None and isinstance(self.default, str):
            return self.parse(self.default)
        return self.default

    def convert(self, raw: object, source: str) -> object:
        """A given raw value (from `source`), checked and read; SettingsError says why not."""
        if self.is_list:
            if isinstance(raw, (list, tuple)):
                return tuple(str(item) for item in raw)
            try:
                return tuple(shlex.split(str(raw)))
            except ValueError as exc:
                raise SettingsError(f"{self.flag}: {raw!r} from {source} is not a shell-quoted "
                                    f"list ({exc})") from None
        if self.is_flag:
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in _TRUE or text in _FALSE:
                return text in _TRUE
            raise SettingsError(f"{self.flag}: {raw!r} from {source} is not a boolean; use "
                                f"1/0, true/false or yes/no")
        text = str(raw).strip()
        if self.allowed() and text not in self.allowed():
            raise SettingsError(
                f"{self.flag}: {text!r} from {source} is not one of {', '.join(self.allowed())}")
        if not text:
            raise SettingsError(f"{self.flag}: empty value from {source}; remove it or give a "
                                f"value")
        if self.parse is not None:
            try:
                return self.parse(text)
            except ValueError as exc:
                raise SettingsError(f"{self.flag}: {text!r} from {source}: {exc}") from None
        if self.is_seconds:
            try:
                seconds = float(text)
            except ValueError:
                seconds = float("nan")
            if not seconds > 0:
                raise SettingsError(
                    f"{self.flag}: {text!r} from {source} is not a positive number of seconds")
            return seconds
        return text

    def settle(self, value: object) -> object:
        """The setting's value: the checked one in its final type."""
        if self.final is not None:
            return self.final(value)
        if self.is_flag:
            return bool(value)
        if self.is_seconds:
            return float(value)  # type: ignore[arg-type]
        if self.is_list:
            return tuple(value)  # type: ignore[arg-type]
        return value


Check = Callable[[Mapping[str, object], Mapping[str, str]], None]


@dataclass(frozen=True)
class OptionGroup:
    """The options one sub-package owns, under one --help heading, and the checks that
    span several of them (each raises SettingsError)."""

    title: str
    options: tuple[OptionSpec, ...]
    checks: tuple[Check, ...] = ()
