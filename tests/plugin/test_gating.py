"""Marker gating as pytest runs it: skips applied at collection, before fixtures, with their
reasons shown. Which marker skips in which session is test_skip_reason.py's."""


def test_slow_is_skipped_without_run_slow_and_names_it(pytester):
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.npu
        @pytest.mark.slow
        def test_long():
            pass

        @pytest.mark.slow
        def test_long_on_the_device(npu_device):
            pass
        """
    )
    result = pytester.runpytest("-rs")
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(["*slow test: enable with --ascend-run-slow*"])


def test_parametrize_id_named_like_a_marker_does_not_gate(pytester):
    """Gating reads markers, not keywords: a parameter id 'slow' is not the slow marker."""
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("mode", ["slow", "sglang"])
        def test_modes(mode):
            pass
        """
    )
    pytester.runpytest().assert_outcomes(passed=2)


def test_gating_skips_before_fixtures_run(pytester):
    """A gated test must not load the model just to be skipped."""
    pytester.makepyfile(
        """
        import pytest

        @pytest.fixture
        def expensive():
            raise AssertionError("fixture ran for a skipped test")

        @pytest.mark.npu
        @pytest.mark.slow
        def test_long(expensive):
            pass
        """
    )
    pytester.runpytest().assert_outcomes(skipped=1)


def test_tests_on_the_sglang_server_run_last(pytester):
    pytester.makepyfile(
        """
        def test_served(sglang_server):
            pass

        def test_local(npu_device):
            pass
        """
    )
    result = pytester.runpytest("--collect-only", "-q")
    result.stdout.fnmatch_lines(["*::test_local", "*::test_served"])


def test_a_performance_bound_is_reported_on_a_smoke_run_and_asserted_when_asked(pytester):
    pytester.makepyfile(
        """
        def test_bound(ascend_perf_verdict):
            ascend_perf_verdict(None)  # a bound that holds says nothing
            ascend_perf_verdict("batch 4 over batch 1 throughput: 0.5x, below 1x")
        """
    )
    smoke = pytester.runpytest()
    smoke.assert_outcomes(passed=1)
    smoke.stdout.fnmatch_lines(["pytest-ascend: reported, not asserted on a smoke run "
                                "(--ascend-assert-perf asserts it): batch 4 over batch 1*"])
    asserted = pytester.runpytest("--ascend-assert-perf")
    asserted.assert_outcomes(failed=1)
    asserted.stdout.fnmatch_lines(["*batch 4 over batch 1 throughput: 0.5x, below 1x*"])
