"""NVIDIA GPUs through `torch.cuda`: float16 by default, nccl for collectives, the CUDA
runtime and driver versions as facts, and NVIDIA's datasheet figures."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, Optional

from pytest_ascend.platforms.base import (
    DatasheetPeak,
    DeviceUnavailable,
    Platform,
    card_label,
    lookup_datasheet,
)
from pytest_ascend.platforms.device import AcceleratorDevice
from pytest_ascend.platforms.facts import run_tool, safe

_H100 = "NVIDIA H100 Tensor Core GPU datasheet (2023), dense figures (sparsity halves them)"
_H200 = "NVIDIA H200 Tensor Core GPU datasheet / product page (2024), dense figures"

# Matched against the name torch.cuda reports, in order; the first pattern that matches wins.
# float32 is the non-tensor-core rate: torch leaves TF32 matmul off by default.
DATASHEETS: tuple[tuple[str, DatasheetPeak], ...] = (
    (r"H100.*PCIe", DatasheetPeak("H100 PCIe", 2000, {"float16": 756, "bfloat16": 756,
                                                       "float32": 51}, _H100, True, 600)),  # NVLink bridge
    (r"H100 NVL", DatasheetPeak("H100 NVL", 3900, {"float16": 835, "bfloat16": 835,
                                                    "float32": 60}, _H100, True, 600)),
    (r"H100", DatasheetPeak("H100 SXM5", 3350, {"float16": 989, "bfloat16": 989,
                                                "float32": 67}, _H100, True, 900)),
    (r"H200 NVL", DatasheetPeak("H200 NVL", 4800, {"float16": 835, "bfloat16": 835,
                                                    "float32": 60}, _H200, True, 900)),
    (r"H200", DatasheetPeak("H200 SXM", 4800, {"float16": 989, "bfloat16": 989,
                                               "float32": 67}, _H200, True, 900)),
)


class CudaPlatform(Platform):
    kind = "cuda"
    launch_blocking_env = "CUDA_LAUNCH_BLOCKING"
    auto_priority = 20
    visible_devices_env = "CUDA_VISIBLE_DEVICES"
    distributed_backend = "nccl"
    profiler_device_activity = "CUDA"
    sglang_flags = ("--device", "cuda")
    # cuBLAS repeats a result bit for bit under torch.use_deterministic_algorithms only with a
    # fixed workspace (PyTorch's "Reproducibility" notes; CUDA >= 10.2).
    deterministic_env = MappingProxyType({"CUBLAS_WORKSPACE_CONFIG": ":4096:8"})
    recorded_env_vars = ("CUDA_VISIBLE_DEVICES", "PYTORCH_CUDA_ALLOC_CONF")
    fact_keys = ("cuda", "cuda_driver")
    required_facts = MappingProxyType({
        "cuda": "torch.version.cuda (a CUDA build of torch)",
        "cuda_driver": "`nvidia-smi` on PATH",
        "device_count": "torch.cuda.device_count()",
    })

    def present(self) -> bool:
        import torch

        return torch.cuda.is_available()

    def open(self, index: int = 0, *, under_auto: bool = False) -> AcceleratorDevice:
        import torch

        if not torch.cuda.is_available():
            build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
            raise DeviceUnavailable(
                f"--ascend-device cuda: no CUDA device is visible (torch {torch.__version__} is "
                f"{build}); check nvidia-smi and CUDA_VISIBLE_DEVICES, or use --ascend-device "
                f"auto"
            )
        return AcceleratorDevice(self, torch.cuda, index)

    def device_count(self) -> int:
        import torch

        return int(torch.cuda.device_count())

    def facts(self, device: Any) -> dict[str, Any]:
        import torch

        return {"cuda": torch.version.cuda, "cuda_driver": safe(_nvidia_driver)}

    def stack_versions(self) -> list[tuple[str, Optional[str]]]:
        import torch

        return [("CUDA", torch.version.cuda)]

    def bus_id(self, device: Any) -> Optional[str]:
        """From the device properties (pci_domain_id / pci_bus_id / pci_device_id, in
        torch's `_CudaDeviceProperties`), in the form nvidia-smi prints."""
        import torch

        props = torch.cuda.get_device_properties(device.index)
        parts = [getattr(props, f"pci_{name}_id", None) for name in ("domain", "bus", "device")]
        if any(part is None for part in parts):
            return None
        domain, bus, slot = parts
        return f"{domain:08x}:{bus:02x}:{slot:02x}.0"

    def telemetry(self, device: Any) -> Any:
        from pytest_ascend.platforms.cuda_telemetry import nvml_telemetry

        return nvml_telemetry(card_label(device), self.bus_id(device), device.index)

    def datasheet(self, device_name: str) -> Optional[DatasheetPeak]:
        return lookup_datasheet(DATASHEETS, device_name)

    def bf16_unsupported(self, device: Any) -> Optional[str]:
        import torch

        with torch.cuda.device(device.index):
            supported = torch.cuda.is_bf16_supported()
        return None if supported else f"{device.name} has no bfloat16 (compute capability < 8.0)"



def _nvidia_driver() -> str:
    out = run_tool(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"])
    return out.strip().splitlines()[0]
