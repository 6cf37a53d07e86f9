"""pytest-benchmark turns itself off under pytest-xdist: a suite run with -n would end green
without one figure. It is refused in one line instead; tests of other projects, and this
project's pytester tests, still run under -n."""

import pytest

pytest.importorskip("xdist")

MEASURED = """
import pytest


@pytest.mark.npu
def test_measured(benchmark, npu_device):
    benchmark.pedantic(sum, args=([1, 2],), rounds=2, iterations=1)
"""


def test_the_suite_under_xdist_is_a_usage_error_in_one_line(pytester):
    pytester.makepyfile(MEASURED)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2",
                                           "--benchmark-json=bench.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stdout.fnmatch_lines(["pytest-ascend: the suite's tests cannot run under "
                                 "pytest-xdist (-n)*"])
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()


def test_tests_outside_the_suite_run_under_xdist(pytester):
    pytester.makepyfile("def test_one():\n    pass\n\ndef test_two():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2")
    result.assert_outcomes(passed=2)
