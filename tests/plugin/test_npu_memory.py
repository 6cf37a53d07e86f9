"""Device memory read safely from several threads, and the HBM pattern check written on the
device, not through host memory."""

import threading
import time
from types import SimpleNamespace

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from pytest_ascend.box.memory_patterns import PATTERNS, check_memory_patterns
from pytest_ascend.platforms.cpu import CpuDevice
from pytest_ascend.platforms.cuda import CudaPlatform
from pytest_ascend.platforms.device import AcceleratorDevice

GIB = 1 << 30
FREE = {0: 10 * GIB, 1: 50 * GIB}


def shared_struct_backend():
    """A backend whose mem_get_info behaves as torch_npu's: the C call fills one global
    struct (Module.cpp, `NPUDeviceMem memory`) and Python then reads its two fields
    (torch_npu/npu/memory.py: `device_prop.free_memory, device_prop.total_memory`); the GIL
    may pass to another thread in between, as it may after any C call."""
    struct = SimpleNamespace(free_memory=0, total_memory=0)

    def mem_get_info(index):
        struct.free_memory, struct.total_memory = FREE[index], 64 * GIB
        time.sleep(0.0005)  # the switch the race needs, made certain
        return struct.free_memory, struct.total_memory

    return SimpleNamespace(
        set_device=lambda index: None, get_device_name=lambda index: "Ascend910B3",
        mem_get_info=mem_get_info, memory_allocated=lambda index: 0,
        memory_reserved=lambda index: 0, max_memory_allocated=lambda index: 0)


def test_two_threads_each_read_their_own_cards_free_memory():
    """The accelerator device is the same class on npu and cuda; cuda's platform only lends
    a torch device type that exists without torch_npu."""
    backend = shared_struct_backend()
    cards = [AcceleratorDevice(CudaPlatform(), backend, index) for index in (0, 1)]
    wrong = []

    def sample(card):
        for _ in range(40):
            free = card.memory().free
            if free != FREE[card.index]:
                wrong.append((card.index, free))

    threads = [threading.Thread(target=sample, args=(card,)) for card in cards]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not wrong, f"{len(wrong)} readings of another card's free memory: {wrong[:3]}"


class CopiesInto(TorchDispatchMode):
    """Records every copy_ into a tensor: its destination's and its source's sizes."""

    def __init__(self):
        super().__init__()
        self.copies = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten.copy_.default:
            self.copies.append((args[0].numel(), args[1].numel()))
        return func(*args, **(kwargs or {}))


def test_constant_patterns_are_filled_on_the_device_never_copied_from_a_host_scalar():
    with CopiesInto() as seen:
        report = check_memory_patterns(CpuDevice(), 1 << 20)
    assert report.ok
    broadcast = [(dst, src) for dst, src in seen.copies if src != dst]
    # a scalar copied into a chunk is expanded to the chunk's size on the host (torch_npu
    # CopyKernel) before it reaches the card
    assert not broadcast, f"{len(broadcast)} chunk writes broadcast a host scalar"
    constant = [name for name, word in PATTERNS.items() if word is not None]
    assert len(seen.copies) <= len(PATTERNS) - len(constant)  # only the address pattern
