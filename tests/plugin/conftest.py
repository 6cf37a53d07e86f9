"""Fixtures for the plugin's own tests: a clean environment and one shared model cache.

torch is imported here, once, for the whole process: pytester's in-process runs remove the
modules an inner run imported, and a second import of torch's C extension in one process
fails (SystemError, or a segfault later).
"""

import os
import shutil
import signal
import textwrap

import pytest
import torch  # noqa: F401  (see below)

from pytest_ascend.model.tiny import TinyRecipe, ensure_built


def in_memory_qwen2(vocab_size: int, max_positions: int):
    """A one-layer transformers Qwen2 built in memory (milliseconds, no checkpoint), seeded:
    the real model class for unit tests of code that drives one."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=vocab_size, hidden_size=16, intermediate_size=32,
                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                         max_position_embeddings=max_positions)
    return Qwen2ForCausalLM(config).eval()


def ctrl_c_as_in_a_terminal():
    """preexec_fn for a child a test sends Ctrl-C: SIGINT's default disposition, which a
    terminal's foreground job has. A test run started in the background (`nohup`, `&` in a
    script) hands its children SIGINT ignored, and Python then never raises
    KeyboardInterrupt: the Ctrl-C tests would fail, and leave their children behind."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory):
    """One model cache for every inner pytest run, so the tiny model is built once."""
    return tmp_path_factory.mktemp("ascend-cache")


# Read before any test clears the environment: the SGLang interpreter CI provides, if any,
# and the services CI provides (PYTEST_ASCEND_REQUIRE_BROWSER=1, PYTEST_ASCEND_REQUIRE_SLURM=1).
SGLANG_PYTHON = os.environ.get("PYTEST_ASCEND_SGLANG_PYTHON")
REQUIRED = frozenset(name for name, value in os.environ.items()
                     if name.startswith("PYTEST_ASCEND_REQUIRE_") and value == "1")


def skip_unless_required(problem, variable):
    """Skip for `problem` (what is missing), or fail where `variable`=1 says the run provides
    it: there a skip would hide a broken install."""
    if problem is None:
        return
    if variable in REQUIRED:
        pytest.fail(f"{variable}=1 but {problem}")
    pytest.skip(problem)


@pytest.fixture(scope="session", autouse=True)
def inner_runs_start_clean():
    """Inner runs (pytester's and subprocesses) inherit neither the PYTEST_XDIST_* of the
    xdist worker running these tests (pytest-benchmark reads PYTEST_XDIST_WORKER and turns
    itself off in a run that has it) nor the outer run's PYTEST_ADDOPTS (CI's `-n 2` would
    put them under xdist, and its --junitxml would be overwritten by theirs). Session-scoped,
    so it holds before the module-scoped fixtures that run the suite once for many tests."""
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith("PYTEST_XDIST_") or name == "PYTEST_ADDOPTS":
                patch.delenv(name)
        yield


@pytest.fixture(autouse=True)
def clean_ascend_env(monkeypatch, shared_cache):
    """Inner runs see no PYTEST_ASCEND_* settings of the outer environment."""
    for name in list(os.environ):
        if name.startswith("PYTEST_ASCEND_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PYTEST_ASCEND_CACHE", str(shared_cache))


@pytest.fixture(scope="session")
def checkpoint_dir(shared_cache, tmp_path_factory):
    """A real on-disk checkpoint (a copy of the tiny build), as a user's --ascend-model PATH."""
    built = ensure_built(TinyRecipe(), shared_cache)
    target = tmp_path_factory.mktemp("checkpoint") / "Tiny-Qwen2-Checkpoint"
    shutil.copytree(built, target)
    return target


@pytest.fixture(scope="session")
def tiny(shared_cache):
    """The built-in tiny model loaded on the CPU in float32 (models.ModelUnderTest)."""
    from pytest_ascend.model.loading import load_under_test
    from pytest_ascend.platforms.cpu import CpuDevice

    return load_under_test("tiny", CpuDevice(), "float32", cache_dir=shared_cache)


@pytest.fixture
def install_platform(pytester):
    """`install_platform(name, module, source, attribute)`: a platform module in the
    pytester directory plus the dist-info an installed package would have, its entry point
    in the `pytest_ascend.platforms` group."""

    def install(name, module, source, attribute="FakePlatform"):
        pytester.path.joinpath(f"{module}.py").write_text(textwrap.dedent(source))
        info = pytester.mkdir(f"{name}-0.1.dist-info")
        info.joinpath("METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
        info.joinpath("entry_points.txt").write_text(
            f"[pytest_ascend.platforms]\n{name} = {module}:{attribute}\n")
        return pytester

    return install

