"""The session's state on `config.stash`, shared by the plugin's hooks and its fixtures.

Hooks (plugin.py) and fixtures (fixtures.py) meet here: the keys under which the session
keeps what it decided or measured, and the accessors that read (or lazily fill) them. Heavy
modules are imported inside the functions, so importing this one stays cheap.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any, Callable, Optional

import pytest

from pytest_ascend.settings import AscendSettings

settings_key = pytest.StashKey[AscendSettings]()
plan_key = pytest.StashKey[Any]()  # session.SessionPlan, imported lazily with torch
model_key = pytest.StashKey[Any]()  # model.loading.ModelUnderTest, once a test loaded it
limits_key = pytest.StashKey[Any]()  # measure.roofline.DeviceLimits, once a test measured them
environment_key = pytest.StashKey[dict]()
results_log_key = pytest.StashKey[Any]()  # reports.results_log.ResultsLog (--ascend-results-log)
sampler_key = pytest.StashKey[Any]()  # on an item: the measure.memory.MemorySampler of its test
guard_key = pytest.StashKey[Any]()  # report_guard.ReportGuard of the session
watchdog_key = pytest.StashKey[Any]()  # watchdog.Watchdog, once a device test ran
hang_key = pytest.StashKey[Any]()  # watchdog.Hang, when the watchdog ended the run
server_key = pytest.StashKey[Any]()  # serving.sglang_server.SessionServer, once a test used it
terminated_key = pytest.StashKey[bool]()  # set when SIGTERM stopped the run
sigterm_restore_key = pytest.StashKey[Callable[[], Any]]()  # puts SIGTERM's old handler back
xdist_refusal_key = pytest.StashKey[str]()  # why pytest-xdist workers ran none of the tests
box_key = pytest.StashKey[Any]()  # box.findings.BoxFindings, once a box test swept the cards


def write_line(config: pytest.Config, line: str) -> None:
    """Straight to the terminal on a line of its own, past output capture (fixtures and tests
    run captured)."""
    if config.pluginmanager.get_plugin("terminalreporter") is None:
        return
    writer = config.get_terminal_writer()
    capture = config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else nullcontext():
        if writer.width_of_current_line:  # mid-way through a row of progress dots
            writer.line()
        writer.line(line)


def progress(config: pytest.Config) -> Callable[[str], None]:
    """A sink for the domain code's progress messages: one `pytest-ascend:` line each."""
    return lambda message: write_line(config, f"pytest-ascend: {message}")


def environment(config: pytest.Config, device: Any) -> dict:
    """The run's environment facts, gathered once."""
    if environment_key not in config.stash:
        from pytest_ascend.reports.environment import gather_environment

        config.stash[environment_key] = gather_environment(device)
    return config.stash[environment_key]


def ascend_block(config: pytest.Config) -> Optional[dict]:
    """The run's provenance block (None in a session that never planned: nothing to say)."""
    from pytest_ascend.reports.provenance import ascend_block as build

    plan = config.stash.get(plan_key, None)
    if plan is None:
        return None
    server = config.stash.get(server_key, None)
    return build(
        plan, environment(config, plan.device), config.stash.get(model_key, None),
        config.stash.get(limits_key, None), server.facts if server is not None else None,
    )
