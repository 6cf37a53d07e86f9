"""`pytest-ascend nightly`'s rules alone: one exit code a scheduler understands, the worst
first, and a folder per night that a second run the same day never overwrites."""

import datetime
import re
from pathlib import Path

import pytest

from pytest_ascend.history.nightly import night_folder
from pytest_ascend.history.nightly_outcome import (EXIT_CANNOT_COMPARE, EXIT_OK, EXIT_REGRESSION,
                                                   EXIT_STOPPED, EXIT_SUITE_DID_NOT_RUN,
                                                   EXIT_SUITE_FAILED, MEANINGS, night_exit_code)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "nightly.md"  # its table of exit codes


@pytest.mark.parametrize("suite_exit, stopped, regressions, comparable, expected", [
    (0, False, 0, True, EXIT_OK),
    (0, False, 0, False, EXIT_CANNOT_COMPARE),
    (0, False, 2, True, EXIT_REGRESSION),
    (1, False, 0, True, EXIT_SUITE_FAILED),
    (1, False, 1, True, EXIT_REGRESSION),  # a slower stack outranks a failed test
    (1, False, 0, False, EXIT_SUITE_FAILED),
    (2, False, 0, True, EXIT_STOPPED),
    (0, True, 3, True, EXIT_STOPPED),
    (4, False, 0, True, EXIT_SUITE_DID_NOT_RUN),
    (7, False, 1, True, EXIT_SUITE_DID_NOT_RUN),  # the watchdog ended a hang
    (5, False, 0, False, EXIT_SUITE_DID_NOT_RUN),  # no tests collected
])
def test_one_exit_code_the_worst_first(suite_exit, stopped, regressions, comparable, expected):
    assert night_exit_code(suite_exit, stopped, regressions, comparable) == expected
    assert len({EXIT_OK, EXIT_REGRESSION, EXIT_CANNOT_COMPARE, 3, EXIT_SUITE_FAILED,
                EXIT_STOPPED, EXIT_SUITE_DID_NOT_RUN}) == 7  # 3: the tool's own error


def test_two_nights_at_the_same_second_get_two_folders(tmp_path):
    moment = datetime.datetime(2026, 12, 2, 2, 0, tzinfo=datetime.timezone.utc)
    first, second = night_folder(tmp_path, moment), night_folder(tmp_path, moment)
    assert first.name == "20261202T020000Z" and second.name == "20261202T020000Z-2"
    assert first.is_dir() and second.is_dir()


def test_every_exit_code_says_in_the_nightly_s_last_line_what_the_docs_say_it_means():
    rows = dict(re.findall(r"^\| (\d) \| (.+) \|$", DOCS.read_text(), re.M))
    assert set(MEANINGS) == {EXIT_OK, EXIT_REGRESSION, EXIT_CANNOT_COMPARE, EXIT_SUITE_FAILED,
                             EXIT_STOPPED, EXIT_SUITE_DID_NOT_RUN}
    for code, meaning in MEANINGS.items():
        assert rows[str(code)].startswith(meaning), (code, meaning, rows[str(code)])
