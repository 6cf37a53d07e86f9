"""Start-up errors: one line, a usage error, and never a green run that tested nothing."""

import json
import shutil
import textwrap

import pytest

TRIVIAL = "def test_nothing_needed():\n    pass\n"


def assert_one_line_usage_error(result, *patterns):
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(list(patterns))
    errors = [line for line in result.stderr.lines if line.startswith("ERROR:")]
    assert len(errors) == 1, result.stderr.str()
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


def test_npu_without_torch_npu_is_a_usage_error(pytester):
    pytester.makepyfile(TRIVIAL)
    result = pytester.runpytest("--ascend-device", "npu", "-m", "npu")
    assert_one_line_usage_error(result, "ERROR: --ascend-device npu: torch_npu is not installed*")


def test_cuda_without_gpu_is_a_usage_error(pytester):
    pytester.makepyfile(TRIVIAL)
    result = pytester.runpytest("--ascend-device", "cuda")
    assert_one_line_usage_error(result, "ERROR: --ascend-device cuda: no CUDA device is visible*")


def fake_torch_npu(pytester, body):
    pkg = pytester.mkpydir("torch_npu")
    pkg.joinpath("__init__.py").write_text(textwrap.dedent(body))


BROKEN_TORCH_NPU = """
raise ImportError("libascendcl.so: cannot open shared object file")
"""


def test_broken_torch_npu_under_auto_is_an_error_not_a_cpu_run(pytester, monkeypatch):
    """Plain `pytest -m npu` (no options at all) on a box whose CANN is broken."""
    monkeypatch.delenv("PYTEST_ASCEND_CACHE")
    fake_torch_npu(pytester, BROKEN_TORCH_NPU)
    pytester.makepyfile("import pytest\n\n@pytest.mark.npu\ndef test_dev(npu_device):\n    pass\n")
    result = pytester.runpytest_subprocess("-m", "npu")
    assert_one_line_usage_error(
        result, "ERROR: torch_npu is installed but failed to initialise: ImportError: libascendcl.so*"
    )


def test_plugin_is_inert_in_sessions_without_its_tests(pytester, monkeypatch):
    """Installed plugins load in every project: one that collects no pytest-ascend test must
    not import torch, probe devices or print a header, even where torch_npu is broken."""
    monkeypatch.delenv("PYTEST_ASCEND_CACHE")
    fake_torch_npu(pytester, BROKEN_TORCH_NPU)
    pytester.makepyfile(
        "import sys\n\ndef test_unrelated():\n    assert 'torch' not in sys.modules\n"
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1)
    assert "pytest-ascend:" not in result.stdout.str()


def test_torch_npu_without_visible_npu_under_auto_is_an_error(pytester):
    fake_torch_npu(
        pytester,
        """
        import types, torch
        torch.npu = types.SimpleNamespace(is_available=lambda: False, device_count=lambda: 0)
        """,
    )
    pytester.makepyfile("import pytest\n\n@pytest.mark.npu\ndef test_dev(npu_device):\n    pass\n")
    result = pytester.runpytest_subprocess()
    assert_one_line_usage_error(result, "ERROR: torch_npu is installed but no NPU is visible*")


def test_missing_model_directory_is_a_usage_error_naming_the_path(pytester):
    pytester.makepyfile(TRIVIAL)
    result = pytester.runpytest("--ascend-model", "/nonexistent/Qwen2.5-14B-Instruct", "-m", "npu")
    assert_one_line_usage_error(
        result, "ERROR: --ascend-model /nonexistent/Qwen2.5-14B-Instruct: no such directory*"
    )


def test_truncated_weights_are_caught_before_any_test(pytester, checkpoint_dir, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(checkpoint_dir, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    pytester.makepyfile(TRIVIAL)
    result = pytester.runpytest("--ascend-model", str(broken), "--ascend-device", "cpu")
    assert_one_line_usage_error(result, "ERROR: --ascend-model *: model.safetensors is corrupt or truncated*")


def test_bad_tiny_recipe_is_a_usage_error(pytester):
    pytester.makepyfile(TRIVIAL)
    result = pytester.runpytest("--ascend-model", "tiny:hidden_size=100,num_attention_heads=3")
    assert_one_line_usage_error(result, "ERROR: --ascend-model tiny:*not divisible*")


def test_model_that_fails_to_load_fails_its_tests_in_one_line(pytester, checkpoint_dir, tmp_path):
    """A checkpoint that passes the file checks but does not load (weights of another shape):
    every test that needs it fails with the loader's one-line reason, no traceback storm."""
    broken = tmp_path / "mismatched"
    shutil.copytree(checkpoint_dir, broken)
    config = json.loads((broken / "config.json").read_text())
    config["hidden_size"] *= 2
    (broken / "config.json").write_text(json.dumps(config))
    pytester.makepyfile(
        "def test_a(model):\n    pass\n\ndef test_b(model):\n    pass\n\ndef test_free():\n    pass\n"
    )
    result = pytester.runpytest("--ascend-model", str(broken), "--ascend-device", "cpu")
    result.assert_outcomes(passed=1, errors=2)
    result.stdout.fnmatch_lines(["*loading *mismatched failed: *"])
    assert "Traceback" not in result.stdout.str()


def test_an_unusable_cache_is_a_one_line_usage_error(pytester):
    pytester.makepyfile(TRIVIAL)
    result = pytester.runpytest("--ascend-cache=/dev/full/cache")
    assert_one_line_usage_error(
        result, "ERROR: --ascend-cache /dev/full/cache: cannot build the built-in model there "
                "(Not a directory); pass --ascend-cache=DIR on a writable disk*")


def test_a_cache_that_fills_up_mid_build_fails_tests_in_one_line(pytester, tmp_path,
                                                                monkeypatch):
    """The probe at start-up passes; the build then hits a full disk."""
    import errno

    from pytest_ascend.model import tiny

    def full_disk(recipe, out_dir):
        out_dir.mkdir(parents=True)
        raise OSError(errno.ENOSPC, "No space left on device", str(out_dir / "model.safetensors"))

    monkeypatch.setattr(tiny, "build_checkpoint", full_disk)
    pytester.makepyfile("def test_a(model):\n    pass\n\ndef test_b(model):\n    pass\n")
    result = pytester.runpytest(f"--ascend-cache={tmp_path / 'fresh'}")
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*--ascend-cache *fresh: cannot build the built-in model there "
                                 "(No space left on device)*"])
    assert "Traceback" not in result.stdout.str()
    assert not list((tmp_path / "fresh" / "models").glob(".building-*"))  # nothing half-built
