"""Huawei Ascend NPUs through torch_npu and CANN.

torch_npu registers the `npu` device type and mirrors `torch.cuda` under `torch.npu`
(Ascend/pytorch, torch_npu/npu/__init__.py), so the device itself is the shared
`AcceleratorDevice` driven by `torch.npu`. What is Ascend's own lives here: initialising
torch_npu (a broken CANN is an error, never a quiet fall-back), the CANN / driver / firmware
/ chip facts, the HCCL collective backend and SGLang's Ascend flags.

Sources: CANN via `torch_npu.npu.utils.get_cann_version(module="CANN")` (torch_npu 7.0.0+,
returns "" before CANN 8.1.RC1), else the `version=` line of ascend_toolkit_install.info
under $ASCEND_HOME_PATH, /usr/local/Ascend/ascend-toolkit/latest (CANN <= 8.x) or
/usr/local/Ascend/cann (8.5+), `<arch>-linux/` inside each. `torch.version.cann` is avoided:
with ASCEND_HOME_PATH unset it walks the current directory (torch_npu/utils/collect_env.py).
Driver and firmware: key=value files /usr/local/Ascend/{driver,firmware}/version.info
(`package_version=` preferred over `Version=`). Chip and HBM: `npu-smi info`, two table rows
per NPU. HCCL: `import torch_npu` registers the "hccl" backend for
`torch.distributed.init_process_group` (Ascend/pytorch,
test/cpp_extensions/test/dispatch_allreduce.py). SGLang: `--device npu --attention-backend
ascend` (docs.sglang.io, "Support Features on Ascend NPU").
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from pathlib import Path
from types import MappingProxyType, ModuleType
from typing import Any, Mapping, Optional

from pytest_ascend.errors import one_line
from pytest_ascend.platforms.base import (
    DatasheetPeak,
    DeviceUnavailable,
    Platform,
    lookup_datasheet,
)
from pytest_ascend.platforms.device import AcceleratorDevice
from pytest_ascend.platforms.facts import (
    package_version,
    parse_key_values,
    run_tool,
    safe,
)

ASCEND_ROOT = Path("/usr/local/Ascend")

_UNOFFICIAL = (
    "third-party reports; Huawei publishes no per-SKU datasheet for 910B, so the suite "
    "measures bandwidth and matmul rate rather than trusting these"
)
# Matched against the name torch.npu reports, in order; the first pattern that matches wins.
DATASHEETS: tuple[tuple[str, DatasheetPeak], ...] = (
    # Ascend 910 (910A): 256 TFLOPS FP16 from Huawei's launch (Aug 2019, Hot Chips 31);
    # 32 GB HBM2 at ~1.2 TB/s as commonly cited. No bf16 on this generation.
    (r"Ascend\s*910(Pro|Premium)?A|Ascend\s*910$", DatasheetPeak(
        "Ascend 910A", 1200, {"float16": 256, "bfloat16": None, "float32": None},
        "Huawei Ascend 910 launch (2019) and third-party reports", False)),
    (r"Ascend\s*910B4", DatasheetPeak(
        "Ascend 910B4", 800, {"float16": 280, "bfloat16": 280, "float32": None},
        _UNOFFICIAL, False)),
    (r"Ascend\s*910B3", DatasheetPeak(
        "Ascend 910B3", 1600, {"float16": 313, "bfloat16": 313, "float32": None},
        _UNOFFICIAL, False)),
    (r"Ascend\s*910B", DatasheetPeak(
        "Ascend 910B1/B2", 1600, {"float16": 376, "bfloat16": 376, "float32": None},
        _UNOFFICIAL, False, 392)),  # HCCS full mesh, 7 x 56 GB/s (third-party figure)
)


class NpuPlatform(Platform):
    kind = "npu"
    auto_priority = 10  # an installed torch_npu means an Ascend box: it must be what runs
    visible_devices_env = "ASCEND_RT_VISIBLE_DEVICES"
    distributed_backend = "hccl"
    sglang_flags = ("--device", "npu", "--attention-backend", "ascend")
    recorded_env_vars = ("ASCEND_RT_VISIBLE_DEVICES", "ASCEND_HOME_PATH", "TASK_QUEUE_ENABLE",
                         "PYTORCH_NPU_ALLOC_CONF", "ASCEND_LAUNCH_BLOCKING", "HCCL_*")
    fact_keys = ("torch_npu", "cann", "driver", "firmware", "npu_chip", "npu_hbm_total_mb",
                 "npu_jit_compile")
    required_facts: Mapping[str, str] = MappingProxyType({
        "torch_npu": "the torch-npu package",
        "cann": "torch_npu get_cann_version or ascend_toolkit_install.info under "
                "$ASCEND_HOME_PATH",
        "driver": "/usr/local/Ascend/driver/version.info (mount it into the container)",
        "firmware": "/usr/local/Ascend/firmware/version.info (mount it into the container)",
        "npu_chip": "`npu-smi info` on PATH",
        "device_count": "torch.npu.device_count()",
    })

    def present(self) -> bool:
        return importlib.util.find_spec("torch_npu") is not None

    def open(self, index: int = 0, *, under_auto: bool = False) -> AcceleratorDevice:
        return AcceleratorDevice(self, self._backend(under_auto), index)

    def device_count(self) -> int:
        return int(self._backend().device_count())

    def facts(self, device: Any) -> dict[str, Any]:
        chips = safe(lambda: parse_npu_smi(run_tool(["npu-smi", "info"])))
        return {
            "torch_npu": package_version("torch_npu"),
            "cann": safe(cann_version),
            "driver": safe(lambda: ascend_version_file(ASCEND_ROOT / "driver" / "version.info")),
            "firmware": safe(
                lambda: ascend_version_file(ASCEND_ROOT / "firmware" / "version.info")),
            "npu_chip": chips[0]["name"] if chips else None,
            "npu_hbm_total_mb": chips[0]["hbm_total_mb"] if chips else None,
            "npu_jit_compile": safe(self._jit_compile),
        }

    def bus_id(self, device: Any) -> Optional[str]:
        """From the Bus-Id column of `npu-smi info`, whose NPU ids are physical: a card's
        index among the visible ones maps through ASCEND_RT_VISIBLE_DEVICES when it is set."""
        visible = os.environ.get(self.visible_devices_env or "", "")
        physical = [int(p) for p in visible.split(",") if p.strip().isdigit()]
        npu = physical[device.index] if device.index < len(physical) else device.index
        chips = parse_npu_smi(run_tool(["npu-smi", "info"]))
        return next((chip["bus_id"] for chip in chips if chip["npu"] == npu), None)

    def stack_versions(self) -> list[tuple[str, Optional[str]]]:
        return [("torch_npu", package_version("torch_npu")), ("CANN", safe(cann_version))]

    def datasheet(self, device_name: str) -> Optional[DatasheetPeak]:
        return lookup_datasheet(DATASHEETS, device_name)

    def _backend(self, under_auto: bool = False) -> ModuleType:
        """Import torch_npu and return `torch.npu`, or raise with the reason in one line."""
        import torch

        hint = " (pass --ascend-device cpu or cuda to test without it)" if under_auto else ""
        if not self.present():
            raise DeviceUnavailable(
                "--ascend-device npu: torch_npu is not installed; install the torch-npu build "
                f"that matches torch {torch.__version__} and source CANN's set_env.sh"
            )
        try:
            import torch_npu  # noqa: F401  (registers the torch.npu namespace)
        except Exception as exc:  # any failure here is a broken CANN/driver install
            raise DeviceUnavailable(
                f"torch_npu is installed but failed to initialise: {one_line(exc)}; check "
                f"that CANN's set_env.sh is sourced and matches torch_npu{hint}"
            ) from exc
        backend = getattr(torch, "npu", None)
        if backend is None:
            raise DeviceUnavailable(f"torch_npu imported but torch.npu is missing{hint}")
        try:
            available = backend.is_available() and backend.device_count() > 0
        except Exception as exc:
            raise DeviceUnavailable(
                f"torch_npu failed to initialise the NPU: {one_line(exc)}{hint}"
            ) from exc
        if not available:
            raise DeviceUnavailable(
                "torch_npu is installed but no NPU is visible: check `npu-smi info`, the "
                f"driver, and {self.visible_devices_env}{hint}"
            )
        return backend

    @staticmethod
    def _jit_compile() -> Optional[bool]:
        """torch.npu.set_compile_mode(jit_compile=...) as the session left it."""
        import torch

        is_false = getattr(torch.npu, "is_jit_compile_false", None)
        return None if is_false is None else not is_false()


def ascend_version_file(path: Path) -> Optional[str]:
    """Driver / firmware version from an Ascend version.info file."""
    values = parse_key_values(path.read_text())
    return values.get("package_version") or values.get("Version") or values.get("version")


def cann_version(
    environ: Optional[Mapping[str, str]] = None, root: Path = ASCEND_ROOT
) -> Optional[str]:
    """The CANN toolkit version, from torch_npu if it can tell, else from the install file."""
    if "torch_npu" in sys.modules:  # only ask torch_npu if the session already imported it
        try:
            from torch_npu.npu.utils import get_cann_version

            version = get_cann_version(module="CANN")
            if version:
                return str(version)
        except Exception:
            pass
    for info in _toolkit_info_files(os.environ if environ is None else environ, root):
        version = parse_key_values(info.read_text()).get("version")
        if version:
            return version
    return None


def _toolkit_info_files(environ: Mapping[str, str], root: Path) -> list[Path]:
    bases = []
    if environ.get("ASCEND_HOME_PATH"):
        bases.append(Path(environ["ASCEND_HOME_PATH"]))
    bases += [root / "ascend-toolkit" / "latest", root / "cann"]
    found = []
    for base in bases:
        found += sorted(base.glob("*-linux/ascend_toolkit_install.info"))
        found += sorted(base.glob("ascend_toolkit_install.info"))
    return [f for f in found if f.is_file()]


_NPU_ROW = re.compile(r"^\|\s*(\d+)\s+(\S+)\s*\|")
_USAGE_PAIR = re.compile(r"(\d+)\s*/\s*(\d+)")
_BUS_ID = re.compile(r"\b([0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-7])\b")


def parse_npu_smi(text: str) -> list[dict[str, Any]]:
    """Chip name, PCI bus id and HBM total (MB) per NPU from `npu-smi info`.

    Each NPU takes two rows: `| <id> <Name> | <Health> | ...` then
    `| <chip> | <Bus-Id> | <AICore> <Memory used/total> <HBM used/total> |`; the last
    used/total pair on the second row is HBM where the chip has it (310P shows only Memory).
    """
    chips: list[dict[str, Any]] = []
    lines = text.split("Process id", 1)[0].splitlines()  # the process table repeats ids
    for i, line in enumerate(lines):
        match = _NPU_ROW.match(line)
        if not match or i + 1 >= len(lines) or not re.search(r"[A-Za-z]", match.group(2)):
            continue
        pairs = _USAGE_PAIR.findall(lines[i + 1])
        bus = _BUS_ID.search(lines[i + 1])
        chips.append(
            {
                "npu": int(match.group(1)),
                "name": match.group(2),
                "bus_id": bus.group(1).lower() if bus else None,
                "hbm_total_mb": int(pairs[-1][1]) if pairs else None,
            }
        )
    return chips
