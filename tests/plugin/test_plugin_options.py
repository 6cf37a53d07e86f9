"""The options as a user meets them: flags, env vars, ini keys, the header, usage errors."""

import pytest

TRIVIAL = "def test_nothing_needed():\n    assert 1 + 1 == 2\n"
# A suite test: only a session holding one plans (and prints its header), whatever
# PYTEST_ASCEND_* variables are set.
ON_THE_DEVICE = "import pytest\n\n@pytest.mark.npu\ndef test_on_the_device(npu_device):\n    pass\n"


def test_help_lists_every_ascend_option(pytester):
    from pytest_ascend.settings import GROUPS

    result = pytester.runpytest("--help")
    for group in GROUPS:  # each sub-package's options under a heading of their own
        result.stdout.fnmatch_lines([f"pytest-ascend: {group.title}:",
                                     *(f"*{spec.flag}*" for spec in group.options)])


def test_header_on_cpu_says_smoke_run_and_cpu_dtype_default(pytester):
    pytester.makepyfile(ON_THE_DEVICE)
    result = pytester.runpytest()
    result.stdout.fnmatch_lines(
        [
            "pytest-ascend: device cpu (*) | dtype float32 (cpu default) | model tiny (built-in "
            "tiny model: smoke run, not a hardware result) | draft tiny-draft",
            "pytest-ascend: torch * | transformers *",  # the cpu platform has no stack of its own
        ]
    )
    result.assert_outcomes(passed=1)


def test_header_shows_where_dtype_came_from(pytester, monkeypatch):
    """The precedence itself is test_settings.py's; this is the header showing it."""
    pytester.makepyfile(ON_THE_DEVICE)
    pytester.makeini("[pytest]\nascend_dtype = bfloat16\n")
    monkeypatch.setenv("PYTEST_ASCEND_DTYPE", "float16")
    pytester.runpytest().stdout.fnmatch_lines(
        ["*dtype float16 (environment variable PYTEST_ASCEND_DTYPE)*"]
    )


def test_bad_value_is_a_one_line_usage_error(pytester, monkeypatch):
    pytester.makepyfile(TRIVIAL)
    monkeypatch.setenv("PYTEST_ASCEND_DEVICE", "gpu")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: --ascend-device: 'gpu' from environment variable PYTEST_ASCEND_DEVICE is not "
         "one of auto, npu, cuda, cpu"]
    )
    assert "Traceback" not in result.stderr.str()


def test_settings_fixture_reflects_options(pytester, checkpoint_dir):
    pytester.makepyfile(
        f"""
        def test_settings(ascend_settings):
            assert ascend_settings.model == {str(checkpoint_dir)!r}
            assert ascend_settings.draft_model is None
            assert ascend_settings.trust_remote_code is True
            assert ascend_settings.run_slow is True
        """
    )
    result = pytester.runpytest(
        "--ascend-model", str(checkpoint_dir), "--ascend-trust-remote-code", "--ascend-run-slow",
        "--ascend-device", "cpu",
    )
    result.assert_outcomes(passed=1)


def test_markers_are_registered_for_strict_markers(pytester):
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.npu
        @pytest.mark.slow
        @pytest.mark.sglang
        def test_marked():
            pass
        """
    )
    result = pytester.runpytest("--strict-markers", "--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.npu:*", "@pytest.mark.slow*", "@pytest.mark.sglang:*"])
    assert pytester.runpytest("--strict-markers").ret == pytest.ExitCode.OK


def test_model_loading_reports_progress_on_the_terminal(pytester):
    pytester.makepyfile("def test_uses_model(model):\n    pass\n")
    result = pytester.runpytest()
    result.stdout.fnmatch_lines(
        ["pytest-ascend: loading * (float32) onto cpu ...", "pytest-ascend: loaded tiny: * M parameters*"]
    )
    result.assert_outcomes(passed=1)


def test_header_appears_when_collected_tests_need_the_device(pytester, monkeypatch):
    monkeypatch.delenv("PYTEST_ASCEND_CACHE")  # nothing configured: planned at collection
    pytester.makepyfile("import pytest\n\n@pytest.mark.npu\ndef test_dev(npu_device):\n    pass\n")
    result = pytester.runpytest()
    result.stdout.fnmatch_lines(["pytest-ascend: device cpu (*) | dtype float32 (cpu default)*"])
    result.assert_outcomes(passed=1)


def test_a_path_option_given_with_a_space_that_moved_the_rootdir_is_warned(pytester,
                                                                           monkeypatch):
    """`--ascend-cache /elsewhere` makes pytest take /elsewhere for a test path and pick its
    rootdir there: the project's ini is lost. `--ascend-cache=/elsewhere` does not."""
    project = pytester.mkdir("project")
    project.joinpath("pytest.ini").write_text("[pytest]\nmarkers =\n    own: a marker\n")
    project.joinpath("test_it.py").write_text(TRIVIAL)
    elsewhere = pytester.mkdir("elsewhere")
    monkeypatch.chdir(project)
    spaced = pytester.runpytest_subprocess("--ascend-cache", str(elsewhere))
    spaced.stdout.fnmatch_lines([f"pytest-ascend: WARNING: pytest chose rootdir * (no ini file) "
                                 f"from `--ascend-cache {elsewhere}`*write "
                                 f"--ascend-cache={elsewhere}"])
    joined = pytester.runpytest_subprocess(f"--ascend-cache={elsewhere}")
    joined.stdout.fnmatch_lines([f"rootdir: {project}", "configfile: pytest.ini"])
    assert "WARNING: pytest chose rootdir" not in joined.stdout.str()
    joined.assert_outcomes(passed=1)
