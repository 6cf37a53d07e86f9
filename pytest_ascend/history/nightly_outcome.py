"""The one exit code of `pytest-ascend nightly`, from what the night found: the rule alone,
with no process or file in it, so that mutation testing can hold it to its table of cases
(tests/plugin/test_verdict_nightly.py)."""

from __future__ import annotations

EXIT_OK, EXIT_REGRESSION, EXIT_CANNOT_COMPARE = 0, 1, 2
# 3 is every pytest-ascend command's internal error (cli.EXIT_INTERNAL)
EXIT_SUITE_FAILED, EXIT_STOPPED, EXIT_SUITE_DID_NOT_RUN = 4, 5, 6
# pytest's own exit codes (ExitCode): 1 tests failed, 2 interrupted; 3, 4, 5 and the plugin's
# 6 (a report not written) and 7 (the watchdog ended a hang) mean the run itself failed.
PYTEST_TESTS_FAILED, PYTEST_INTERRUPTED = 1, 2


def night_exit_code(suite_exit: int, stopped: bool, regressions: int, comparable: bool) -> int:
    """One code for a scheduler, the worst first: stopped (5), the suite could not run (6),
    a regression (1), a test failed (4), nothing to compare with (2), fine (0).

    `stopped`: SIGTERM or Ctrl-C reached the nightly; `regressions`: of the gate chosen;
    `comparable`: the new run has earlier runs of its context to be judged against."""
    if stopped or suite_exit == PYTEST_INTERRUPTED:
        return EXIT_STOPPED
    if suite_exit not in (0, PYTEST_TESTS_FAILED):
        return EXIT_SUITE_DID_NOT_RUN
    if regressions:
        return EXIT_REGRESSION
    if suite_exit == PYTEST_TESTS_FAILED:
        return EXIT_SUITE_FAILED
    return EXIT_OK if comparable else EXIT_CANNOT_COMPARE


MEANINGS = {
    EXIT_OK: "the suite passed and nothing regressed",
    EXIT_REGRESSION: "a regression",
    EXIT_CANNOT_COMPARE: "nothing earlier to compare this run with",
    EXIT_SUITE_FAILED: "a test failed (nothing regressed)",
    EXIT_STOPPED: "the run was stopped (SIGTERM or Ctrl-C); its reports are written",
    EXIT_SUITE_DID_NOT_RUN: "the suite could not run as asked",
}
