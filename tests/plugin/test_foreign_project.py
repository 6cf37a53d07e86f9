"""pytest loads an installed plugin in every project of the environment. In a project that
is not the hardware suite, pytest-ascend must change nothing: its own `slow` tests, its own
`--run-slow` option and its outcomes are exactly what they are without the plugin, and the
plugin imports no torch there."""

import json

import pytest

FOREIGN_INI = """
[pytest]
markers =
    slow: this project's own slow tests
"""

# The usual recipe from pytest's documentation: a project-level --run-slow switch.
FOREIGN_CONFTEST = """
import json
import sys

import pytest


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", help="run this project's slow tests")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-slow"):
        return
    for item in items:
        if item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.skip(reason="own rule: pass --run-slow"))


def pytest_unconfigure(config):
    with open("modules.json", "w") as fh:
        json.dump({"torch": "torch" in sys.modules}, fh)
"""

FOREIGN_TESTS = """
import pytest


@pytest.fixture
def model():
    return "this project's own model fixture"


@pytest.mark.slow
def test_slow_one(model):
    assert model.startswith("this project")


@pytest.mark.slow
def test_slow_failing():
    assert 2 + 2 == 5


def test_plain():
    pass
"""


def run(pytester, *args):
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rs", *args)
    torch_imported = json.loads((pytester.path / "modules.json").read_text())["torch"]
    return result, torch_imported


@pytest.fixture
def foreign_project(pytester, monkeypatch):
    monkeypatch.delenv("PYTEST_ASCEND_CACHE")  # nothing of pytest-ascend configured
    pytester.makeini(FOREIGN_INI)
    pytester.makeconftest(FOREIGN_CONFTEST)
    pytester.makepyfile(FOREIGN_TESTS)
    return pytester


@pytest.mark.parametrize("args", [(), ("--run-slow",)], ids=["default", "run-slow"])
def test_a_foreign_project_runs_exactly_as_without_the_plugin(foreign_project, args):
    with_plugin, torch_with = run(foreign_project, *args)
    without_plugin, torch_without = run(foreign_project, "-p", "no:ascend", *args)

    assert with_plugin.ret == without_plugin.ret
    assert with_plugin.parseoutcomes() == without_plugin.parseoutcomes()
    assert not torch_with and not torch_without, "a foreign session imported torch"
    assert "pytest-ascend" not in with_plugin.stdout.str()
    if args:
        with_plugin.assert_outcomes(passed=2, failed=1)
    else:
        with_plugin.assert_outcomes(passed=1, skipped=2)
        with_plugin.stdout.fnmatch_lines(["*own rule: pass --run-slow*"])


def test_pytest_ascend_variables_in_the_environment_change_nothing(foreign_project, monkeypatch):
    """An operator's profile may export PYTEST_ASCEND_* for the Atlas box's nightly; every
    other project's pytest on that host must still not import torch or open a card."""
    monkeypatch.setenv("PYTEST_ASCEND_DEVICE", "cpu")
    monkeypatch.setenv("PYTEST_ASCEND_MODEL", "tiny")
    monkeypatch.setenv("PYTEST_ASCEND_RUN_SLOW", "1")
    result, torch_imported = run(foreign_project)
    assert not torch_imported, "a foreign session imported torch"
    result.assert_outcomes(passed=1, skipped=2)
    assert "pytest-ascend" not in result.stdout.str()
