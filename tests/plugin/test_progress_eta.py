"""A long session says where it stands: done of total, the time so far and an estimate of
the rest at the pace so far."""

import pytest

from pytest_ascend.reports.progress import duration_text, eta_line


@pytest.mark.parametrize("seconds, text", [(3, "3 s"), (59.6, "1m00s"), (245, "4m05s"),
                                           (3720, "1h02m"), (-1, "0 s")])
def test_durations_read_as_a_person_plans(seconds, text):
    assert duration_text(seconds) == text


def test_the_estimate_is_the_pace_so_far_times_what_is_left():
    assert eta_line(10, 40, 300) == "10/40 suite tests in 5m00s; about 15m00s left at this pace"


def test_nothing_to_estimate_before_the_first_test():
    assert eta_line(0, 40, 12) is None and eta_line(3, 0, 12) is None


def test_a_long_session_prints_its_eta(pytester, monkeypatch):
    """ETA_EVERY_S set to 0 here: every finished suite test reports."""
    pytester.makeconftest("import pytest_ascend.reports.progress as p\np.ETA_EVERY_S = 0\n")
    pytester.makepyfile("""
        import pytest

        @pytest.mark.npu
        @pytest.mark.parametrize("n", range(3))
        def test_on_the_device(npu_device, n):
            pass
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["pytest-ascend: 1/3 suite tests in * s; about * left at "
                                 "this pace", "pytest-ascend: 2/3 suite tests in *"])
