"""DeviceUnderTest: resolution, and the accelerator path driven through a fake backend.

No accelerator is needed: the npu/cuda implementation takes its backend module (torch.npu or
torch.cuda) as a parameter, so a fake module with the same functions exercises exactly the
calls the real one receives.
"""

import sys
import textwrap
import time

import pytest
import torch

from pytest_ascend.platforms import all_platforms, get_platform, resolve_device
from pytest_ascend.platforms.base import DeviceUnavailable
from pytest_ascend.platforms.cpu import CpuDevice
from pytest_ascend.platforms.cuda import CudaPlatform
from pytest_ascend.platforms.device import AcceleratorDevice
from pytest_ascend.platforms.npu import NpuPlatform


class FakeEvent:
    clock_ms = 0.0

    def __init__(self, enable_timing=False):
        assert enable_timing, "timing events must be created with enable_timing=True"
        self.at = None
        self.synchronized = False

    def record(self):
        self.at = FakeEvent.clock_ms

    def synchronize(self):
        self.synchronized = True

    def elapsed_time(self, end):
        assert end.synchronized, "elapsed_time read before the end event completed"
        return end.at - self.at


class FakeBackend:
    """The subset of torch.npu / torch.cuda the suite uses, recording calls."""

    Event = FakeEvent

    def __init__(self, with_mem_get_info=True):
        self.calls = []
        self.current = None
        if with_mem_get_info:
            self.mem_get_info = lambda i: (30 * 2**30, 64 * 2**30)

    def is_available(self):
        return True

    def set_device(self, i):
        self.calls.append(("set_device", i))
        self.current = i

    def get_device_name(self, i):
        return f"Ascend910B{self.current}"  # like torch_npu: the *current* device's name

    def synchronize(self, i=None):
        self.calls.append(("synchronize", i))

    def device_count(self):
        return 2

    def memory_allocated(self, i):
        return 100

    def memory_reserved(self, i):
        return 200

    def max_memory_allocated(self, i):
        return 150

    def reset_peak_memory_stats(self, i):
        self.calls.append(("reset_peak", i))

    def empty_cache(self):
        self.calls.append(("empty_cache",))

    def get_device_properties(self, i):
        return type("Props", (), {"total_memory": 32 * 2**30, "name": "Ascend910B"})()


def test_accelerator_makes_its_device_current_before_asking_the_name():
    backend = FakeBackend()
    dut = AcceleratorDevice(CudaPlatform(), backend, index=1)
    assert backend.calls[0] == ("set_device", 1)
    assert dut.name == "Ascend910B1"
    assert dut.torch_device == torch.device("cuda", 1)


def test_accelerator_timer_brackets_the_region_with_events():
    backend = FakeBackend()
    dut = AcceleratorDevice(CudaPlatform(), backend)
    FakeEvent.clock_ms = 10.0
    with dut.timer() as timing:
        assert ("synchronize", 0) in backend.calls, "queued work must drain before the start"
        FakeEvent.clock_ms = 35.5
    assert timing.elapsed_ms == pytest.approx(25.5)
    assert timing.host_ms >= 0


def test_with_several_cards_open_the_timer_records_on_its_own_card():
    """Events record on the current device's stream; the last card opened is current."""
    backend = FakeBackend()
    first, _ = (AcceleratorDevice(CudaPlatform(), backend, index=i) for i in (0, 1))
    assert backend.current == 1
    with first.timer():
        assert backend.current == 0
    assert backend.current == 0


def test_accelerator_memory_uses_allocator_and_driver_figures():
    snap = AcceleratorDevice(CudaPlatform(), FakeBackend()).memory()
    assert (snap.allocated, snap.reserved, snap.peak) == (100, 200, 150)
    assert (snap.free, snap.total) == (30 * 2**30, 64 * 2**30)
    assert snap.source == "cuda caching allocator"


def test_old_torch_npu_without_mem_get_info_reports_total_and_unknown_free():
    snap = AcceleratorDevice(CudaPlatform(), FakeBackend(with_mem_get_info=False)).memory()
    assert snap.total == 32 * 2**30 and snap.free is None


def test_accelerator_reset_and_empty_cache_reach_the_backend():
    backend = FakeBackend()
    dut = AcceleratorDevice(CudaPlatform(), backend)
    dut.reset_peak()
    dut.empty_cache()
    assert ("reset_peak", 0) in backend.calls and ("empty_cache",) in backend.calls


def test_auto_opens_the_first_platform_present():
    """Whatever this machine has: auto picks the first present platform in priority order
    (npu, then cuda, then cpu), so this holds on a CPU box, a GPU box and an Atlas box."""
    first = next(p for p in all_platforms() if p.present())
    dut = resolve_device("auto")
    assert dut.kind == first.kind and type(dut.platform) is type(first)
    assert dut.platform.has_device_memory == first.has_device_memory


def test_cpu_is_tried_last_and_is_always_present():
    platforms = all_platforms()
    assert [p.kind for p in platforms[:2]] == ["npu", "cuda"] and platforms[-1].kind == "cpu"
    assert get_platform("cpu").present() and resolve_device("cpu").platform.is_host


def test_auto_prefers_cuda_when_available(monkeypatch):
    backend = FakeBackend()
    monkeypatch.setattr(NpuPlatform, "present", lambda self: False)
    monkeypatch.setattr(torch, "cuda", backend)
    try:
        dut = resolve_device("auto")
    finally:
        monkeypatch.undo()  # torch.cuda is process-wide: restore it at once
    assert dut.kind == "cuda" and dut.backend is backend


def test_auto_with_broken_torch_npu_raises(monkeypatch):
    monkeypatch.setattr(NpuPlatform, "present", lambda self: True)
    monkeypatch.setitem(sys.modules, "torch_npu", None)  # import torch_npu -> ImportError
    with pytest.raises(DeviceUnavailable, match="torch_npu is installed but failed to initialise"):
        resolve_device("auto")


def test_an_unknown_kind_names_the_registered_ones():
    with pytest.raises(DeviceUnavailable, match="unknown device kind 'xpu': use one of npu, cuda"):
        get_platform("xpu")


def test_each_platform_says_what_is_specific_to_it():
    npu, cuda, cpu = (get_platform(kind) for kind in ("npu", "cuda", "cpu"))
    assert (npu.visible_devices_env, cuda.visible_devices_env) == (
        "ASCEND_RT_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES")
    assert (npu.distributed_backend, cuda.distributed_backend, cpu.distributed_backend) == (
        "hccl", "nccl", "gloo")
    assert (npu.default_dtype, cuda.default_dtype, cpu.default_dtype) == (
        "float16", "float16", "float32")
    assert npu.sglang_flags == ("--device", "npu", "--attention-backend", "ascend")
    for platform in (npu, cuda, cpu):
        assert set(platform.required_facts) <= {*platform.fact_keys, "device_count"}


def test_cpu_timer_measures_host_time():
    dut = CpuDevice()
    with dut.timer() as timing:
        time.sleep(0.05)
    assert 45 <= timing.elapsed_ms < 500


def test_cpu_memory_is_the_process_and_says_so():
    dut = CpuDevice()
    before = dut.memory()
    block = torch.ones(64 * 2**20, dtype=torch.uint8)  # 64 MiB, touched
    after = dut.memory()
    assert "RSS" in after.source
    assert after.allocated - before.allocated >= 48 * 2**20
    assert after.peak >= after.allocated
    assert 0 < after.free <= after.total
    del block


def test_cpu_reset_peak_starts_a_new_window():
    dut = CpuDevice()
    block = torch.ones(128 * 2**20, dtype=torch.uint8)
    del block
    high = dut.memory().peak
    dut.reset_peak()
    assert dut.memory().peak <= high


def test_npu_device_through_a_fake_torch_npu_in_a_fresh_process(pytester):
    """The whole session path on 'npu': a stand-in torch_npu that registers the npu device
    type the way the real one does (rename_privateuse1_backend) and a torch.npu module."""
    pkg = pytester.mkpydir("torch_npu")
    pkg.joinpath("__init__.py").write_text(
        textwrap.dedent(
            """
            import types, torch
            torch.utils.rename_privateuse1_backend("npu")

            class Event:
                def __init__(self, enable_timing=False):
                    self.t = None
                def record(self):
                    import time
                    self.t = time.perf_counter()
                def synchronize(self):
                    pass
                def elapsed_time(self, end):
                    return (end.t - self.t) * 1e3

            state = {"current": 0}
            torch.npu = types.SimpleNamespace(
                is_available=lambda: True, device_count=lambda: 8,
                set_device=lambda i: state.update(current=i),
                get_device_name=lambda i=None: "Ascend910B3", synchronize=lambda i=None: None,
                Event=Event, memory_allocated=lambda i=None: 1 << 20,
                memory_reserved=lambda i=None: 2 << 20, max_memory_allocated=lambda i=None: 3 << 20,
                reset_peak_memory_stats=lambda i=None: None, empty_cache=lambda: None,
                mem_get_info=lambda i=None: (60 << 30, 64 << 30),
            )
            """
        )
    )
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.npu
        def test_device(npu_device, ascend_env):
            assert npu_device.kind == "npu" and str(npu_device.torch_device) == "npu:0"
            with npu_device.timer() as t:
                pass
            assert t.elapsed_ms >= 0
            assert npu_device.memory().total == 64 << 30
            assert ascend_env["device_kind"] == "npu" and ascend_env["device_count"] == 8
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.stdout.fnmatch_lines([
        "pytest-ascend: device npu:0 (Ascend910B3) | dtype float16 (npu default)*",
        "pytest-ascend: torch * | torch_npu - | CANN - | transformers *",  # not installed here
    ])
    result.assert_outcomes(passed=1)
