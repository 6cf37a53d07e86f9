"""The docs site's options page, written from the option table itself.

The README once carried a hand-kept copy of every option's flag, ini key, environment
variable and default, and it drifted from settings.py. Here the page is derived from
`pytest_ascend.settings.OPTIONS`, the same specs the plugin registers, so the only way to
document an option is to declare it; `tests/plugin/test_docs_options.py` fails when
docs/options.md was not regenerated after a change:

    python -m pytest_ascend.docs_options > docs/options.md

Imports neither torch nor pytest, so it runs in a bare docs environment.
"""

from __future__ import annotations

import sys
from typing import Iterable, Optional

from pytest_ascend.settings import OPTIONS, OptionSpec

REGENERATE = "python -m pytest_ascend.docs_options > docs/options.md"

_INTRO = f"""\
# Options

<!-- Generated from pytest_ascend/settings.py (OPTIONS): do not edit by hand.
     Regenerate with: {REGENERATE} -->

Every option is a command-line flag, an ini key (in `[tool.pytest.ini_options]` of
pyproject.toml, or pytest.ini) and an environment variable. Precedence: command line >
environment > ini file > default. A bad value is a one-line usage error that names where it
came from (for example `environment variable PYTEST_ASCEND_DEVICE`).

Write every valued option as `--option=value`. Given as `--ascend-model /models/Qwen...`,
pytest takes an existing path for a test path and may pick its rootdir from it; the run then
loses the project's pytest configuration (timeout, `--strict-markers`, testpaths). The report
header warns when that happened.

Boolean options take `1/0`, `true/false`, `yes/no` or `on/off` from the environment and the
ini file. A repeatable option takes one shell-quoted string there.
"""


def usage(spec: OptionSpec) -> str:
    """How the option is written on a command line, `=` before any value (see the intro)."""
    if spec.is_flag:
        return spec.flag
    if spec.metavar:
        value = spec.metavar
    elif spec.choices and not callable(spec.choices):
        value = "|".join(spec.allowed())
    else:
        value = spec.name.upper()
    return f"{spec.flag}={value}"


def default_text(spec: OptionSpec) -> str:
    """The default as a reader needs it: the spec's own words for a derived default, else the
    value (the plugin's `--help` shows the same)."""
    if spec.default_text is not None:
        return spec.default_text
    if spec.is_flag:
        return "off" if not spec.default else "on"
    if spec.default in (None, ()):
        return "not set"
    return f"`{spec.default}`"


def choices_text(spec: OptionSpec) -> Optional[str]:
    """The accepted values. A computed list (the platforms, which installed packages can
    extend) is not frozen into the page: it depends on the environment."""
    if callable(spec.choices):
        return "computed when pytest starts; `pytest --help` lists them"
    if spec.choices:
        return ", ".join(f"`{choice}`" for choice in spec.allowed())
    return None


def anchor(spec: OptionSpec) -> str:
    """The section id other pages link to: options.md#ascend-model (set with attr_list, since
    the toc extension would slug the flag's leading dashes into `-ascend-model`)."""
    return spec.flag.lstrip("-")


def _cell(text: str) -> str:
    """Plain text safe inside a Markdown table cell."""
    return text.replace("|", "\\|")


def options_markdown(options: Iterable[OptionSpec] = OPTIONS) -> str:
    """The whole options page: the summary table, then one section per option."""
    specs = list(options)
    lines = [_INTRO, "| option | environment variable | ini key | default |",
             "|---|---|---|---|"]
    for spec in specs:
        lines.append(f"| [`{spec.flag}`](#{anchor(spec)}) | `{spec.env}` | `{spec.ini}` | "
                     f"{_cell(default_text(spec))} |")
    for spec in specs:
        lines += ["", f"## `{spec.flag}` {{ #{anchor(spec)} }}", "", f"`{usage(spec)}`", "",
                  spec.help[0].upper() + spec.help[1:] + ".", "",
                  f"- environment variable: `{spec.env}`", f"- ini key: `{spec.ini}`",
                  f"- default: {default_text(spec)}"]
        choices = choices_text(spec)
        if choices:
            lines.append(f"- values: {choices}")
        if spec.is_list:
            lines.append("- repeatable on the command line")
    return "\n".join(lines) + "\n"


def main() -> None:
    """Print the page: `python -m pytest_ascend.docs_options > docs/options.md`."""
    sys.stdout.write(options_markdown())


if __name__ == "__main__":
    main()
