"""docs/options.md is generated from the option specs, and a stale copy fails here."""

import subprocess
import sys
from pathlib import Path

from pytest_ascend.docs_options import REGENERATE, options_markdown, usage
from pytest_ascend.settings import OPTIONS

OPTIONS_PAGE = Path(__file__).resolve().parents[2] / "docs" / "options.md"


def test_options_page_is_current():
    written = OPTIONS_PAGE.read_text(encoding="utf-8") if OPTIONS_PAGE.exists() else ""
    assert written == options_markdown(), f"docs/options.md is stale: run `{REGENERATE}`"


def test_every_option_is_documented_with_its_three_names():
    page = options_markdown()
    for spec in OPTIONS:
        section = page.split(f"## `{spec.flag}` ", 1)[1].split("\n## ", 1)[0]
        assert f"`{spec.env}`" in section and f"`{spec.ini}`" in section, spec.flag
        assert f"`{usage(spec)}`" in section, spec.flag


def test_valued_options_are_written_with_an_equals_sign():
    """With a space, pytest can take a path value for a test path and pick its rootdir."""
    for spec in OPTIONS:
        if spec.is_flag:
            assert usage(spec) == spec.flag
        else:
            assert usage(spec).startswith(spec.flag + "="), usage(spec)


def test_generator_runs_without_torch():
    """The docs job installs mkdocs, not torch; this process already imported torch."""
    code = ("import sys, pytest_ascend.docs_options as d; d.main(); "
            "sys.exit('torch' in sys.modules or 'pytest' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == options_markdown()
