"""A new device kind is one new file: an out-of-tree platform, registered through the
`pytest_ascend.platforms` entry point group, is a choice of --ascend-device, is found by
auto, and runs the whole compat suite; its facts reach the report like npu's or cuda's."""

import json
from pathlib import Path

import pytest

from pytest_ascend.reports.results_log import read_results_log

COMPAT_SUITE = Path(__file__).resolve().parents[1] / "compat"

# The whole platform: what a vendor package would ship as one module.
FAKE_PLATFORM = '''
"""Fakeacc: a made-up accelerator whose tensors live in host memory."""

import os
from types import MappingProxyType

from pytest_ascend.platforms.base import Platform
from pytest_ascend.platforms.cpu import CpuDevice


class FakeDevice(CpuDevice):
    """Host memory and the host clock, under another name."""

    def __init__(self, platform):
        super().__init__(platform)
        self.name = "Fake Accelerator 9000"


class FakePlatform(Platform):
    kind = "fakeacc"
    auto_priority = 15  # after npu, before cuda
    has_device_memory = False  # no device memory of its own: the process's figures
    one_rank_per_card = False  # torchrun ranks share the host
    default_dtype = "float32"
    visible_devices_env = "FAKEACC_VISIBLE_DEVICES"
    distributed_backend = "gloo"
    sglang_flags = ("--device", "cpu")
    recorded_env_vars = ("FAKEACC_*",)
    fact_keys = ("fakeacc_firmware",)
    required_facts = MappingProxyType({"fakeacc_firmware": "the fakeacc firmware table"})

    def present(self):
        return os.environ.get("FAKEACC_PRESENT") == "1"

    def open(self, index=0, *, under_auto=False):
        return FakeDevice(self)

    def device_count(self):
        return 4

    def facts(self, device):
        return {"fakeacc_firmware": "9.9.9"}

    def stack_versions(self):
        return [("fakeacc-runtime", "9.9.9")]

    def float16_matmul_unsupported(self, device):
        from pytest_ascend.platforms.cpu import CpuPlatform

        return CpuPlatform().float16_matmul_unsupported(device)  # the host computes
'''


@pytest.fixture
def fakeacc(install_platform):
    return install_platform("fakeacc", "fakeacc_platform", FAKE_PLATFORM)


def test_the_entry_point_adds_a_device_choice(fakeacc):
    result = fakeacc.runpytest_subprocess("--help")
    result.stdout.fnmatch_lines(["*--ascend-device={auto,npu,cuda,cpu,fakeacc}*"])


def test_the_compat_suite_runs_on_the_new_platform(fakeacc, monkeypatch):
    monkeypatch.setenv("FAKEACC_VISIBLE_DEVICES", "0,1,2,3")
    result = fakeacc.runpytest_subprocess(
        "-p", "no:cacheprovider", "-m", "npu", "--ascend-device", "fakeacc",
        "--ascend-results-log", "run.jsonl", str(COMPAT_SUITE),
    )
    result.stdout.fnmatch_lines([
        "pytest-ascend: device cpu (Fake Accelerator 9000) | dtype float32 (fakeacc default)*",
        "pytest-ascend: torch * | fakeacc-runtime 9.9.9 | transformers *",
    ])
    outcomes = result.parseoutcomes()
    assert result.ret == 0 and outcomes.get("passed", 0) >= 15, result.stdout.str()[-3000:]
    assert "failed" not in outcomes and "error" not in outcomes
    end = read_results_log(fakeacc.path / "run.jsonl")[-1]
    block = end["ascend"]
    assert (block["device_kind"], block["device_name"]) == ("fakeacc", "Fake Accelerator 9000")
    assert block["fakeacc_firmware"] == "9.9.9" and block["device_count"] == 4
    assert block["env_vars"]["FAKEACC_VISIBLE_DEVICES"] == "0,1,2,3"
    assert "cann" in block and block["cann"] is None  # every platform's keys, on every run
    json.dumps(block)


def test_auto_finds_the_new_platform_by_its_priority(fakeacc, monkeypatch):
    monkeypatch.setenv("FAKEACC_PRESENT", "1")
    fakeacc.makepyfile("""
        import pytest

        @pytest.mark.npu
        def test_device(npu_device, ascend_plan):
            assert npu_device.kind == "fakeacc" and ascend_plan.dtype == "float32"
    """)
    result = fakeacc.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["pytest-ascend: device cpu (Fake Accelerator 9000)*"])


def test_a_broken_platform_is_a_one_line_usage_error(pytester, install_platform):
    install_platform("brokenacc", "brokenacc_platform",
                     "raise ImportError('libbrokenacc.so: cannot open shared object file')\n")
    pytester.makepyfile("def test_nothing():\n    pass\n")
    result = pytester.runpytest_subprocess("--ascend-device", "brokenacc")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([
        "ERROR: platform 'brokenacc' (brokenacc_platform:FakePlatform, entry point group "
        "pytest_ascend.platforms) failed to load: ImportError: libbrokenacc.so*"
    ])
    assert "Traceback" not in result.stderr.str()


COMPILING_PLATFORM = FAKE_PLATFORM + '''

class CompilingPlatform(FakePlatform):
    """A chip that compiles each operator on first use, as a 910A with JIT on."""

    def first_use_compile_s(self, device):
        return float(os.environ.get("FAKEACC_COMPILE_S", "0"))
'''


@pytest.mark.parametrize("compile_s, outcome", [("0", "failed"), ("4", "passed")])
def test_a_chip_that_compiles_on_first_use_extends_every_timeout(install_platform, compile_s,
                                                                   outcome, monkeypatch):
    """pytest-timeout and the watchdog share the extended budget: a 1 s test that spends 2 s
    compiling passes only with the platform's allowance."""
    pytester = install_platform("fakeacc", "fakeacc_platform", COMPILING_PLATFORM,
                                "CompilingPlatform")
    monkeypatch.setenv("FAKEACC_PRESENT", "1")
    monkeypatch.setenv("FAKEACC_COMPILE_S", compile_s)
    pytester.makepyfile("""
        import time
        import pytest

        @pytest.mark.timeout(1)
        def test_first_forward(npu_device):
            time.sleep(2)  # the operators compiling
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--ascend-device=fakeacc")
    result.assert_outcomes(**{outcome: 1})
