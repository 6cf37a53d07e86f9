"""Huawei Ascend NPUs through torch_npu and CANN.

torch_npu registers the `npu` device type and mirrors `torch.cuda` under `torch.npu`
(Ascend/pytorch, torch_npu/npu/__init__.py), so the device itself is the shared
`AcceleratorDevice` driven by `torch.npu`. What is Ascend's own lives here: initialising
torch_npu (a broken CANN is an error, never a quiet fall-back), the CANN / driver / firmware
/ chip facts, the HCCL collective backend and SGLang's Ascend flags.

Sources: CANN via `torch_npu.npu.utils.get_cann_version(module="CANN")` (torch_npu 7.0.0+,
returns "" before CANN 8.1.RC1), else the `version=` line of ascend_toolkit_install.info
under $ASCEND_HOME_PATH, /usr/local/Ascend/ascend-toolkit/latest (CANN <= 8.x) or
/usr/local/Ascend/cann (8.5+), `<arch>-linux/` inside each, and on a box with only the NNAE
(the runtime without the toolkit) /usr/local/Ascend/nnae/latest/ascend_nnae_install.info,
the file Ascend's install guides `cat` for its version. `torch.version.cann` is avoided:
with ASCEND_HOME_PATH unset it walks the current directory (torch_npu/utils/collect_env.py).
Driver and firmware: key=value files /usr/local/Ascend/{driver,firmware}/version.info
(`package_version=` preferred over `Version=`). Chip and HBM: `npu-smi info`, a row per NPU
then a row per chip (two on a 910C). Bus ids: the runtime's device ids (and those of
ASCEND_RT_VISIBLE_DEVICES) are chip logic ids, which inside a container are renumbered from
0; `npu-smi info -m` maps each logic id to its NPU id and chip id, which the table's Bus-Id
rows are keyed by. HCCL: `import torch_npu` registers the "hccl" backend for
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
    card_label,
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
# The SoC names torch.npu.get_device_name reports (aclrtGetSocName), by generation, from
# torch_npu's SocVersion enum (Ascend/pytorch, torch_npu/csrc/core/npu/NpuVariables.h):
# Ascend910PremiumA/ProA/A/ProB/B (100-104) are the first generation, Ascend910B1-B4
# (220-225) the A2 parts, Ascend910_93xx (250+, A3) the 910C. A bare "Ascend910B" is the
# first-generation 104, not an A2 part: every pattern is anchored.
FIRST_GENERATION = r"^Ascend\s*910(PremiumA|ProA|A|ProB|B)?$"
A2 = r"^Ascend\s*910B[1-4]"
A3 = r"^Ascend\s*910(_93\d\d|C)"
# Ascend910B1 and later (SocVersion >= 220, 310B aside): bf16, float32 kept as float32, JIT
# off by default. Everything older (the first generation, 310P) has none of these.
B1_OR_LATER = r"^Ascend\s*(910B[1-4]|910_9\d{3}|910C|950)"

# Matched against the name torch.npu reports, in order; the first pattern that matches wins.
DATASHEETS: tuple[tuple[str, DatasheetPeak], ...] = (
    # Ascend 910 (910A): 256 TFLOPS FP16 from Huawei's launch (Aug 2019, Hot Chips 31);
    # 32 GB HBM2 at ~1.2 TB/s as commonly cited. No bf16 on this generation.
    (FIRST_GENERATION, DatasheetPeak(
        "Ascend 910A", 1200, {"float16": 256, "bfloat16": None, "float32": None},
        "Huawei Ascend 910 launch (2019) and third-party reports", False)),
    (r"^Ascend\s*910B4", DatasheetPeak(
        "Ascend 910B4", 800, {"float16": 280, "bfloat16": 280, "float32": None},
        _UNOFFICIAL, False)),
    (r"^Ascend\s*910B3", DatasheetPeak(
        "Ascend 910B3", 1600, {"float16": 313, "bfloat16": 313, "float32": None},
        _UNOFFICIAL, False)),
    (r"^Ascend\s*910B[12]", DatasheetPeak(
        "Ascend 910B1/B2", 1600, {"float16": 376, "bfloat16": 376, "float32": None},
        _UNOFFICIAL, False, 392)),  # HCCS full mesh, 7 x 56 GB/s (third-party figure)
)


class NpuPlatform(Platform):
    kind = "npu"
    launch_blocking_env = "ASCEND_LAUNCH_BLOCKING"
    auto_priority = 10  # an installed torch_npu means an Ascend box: it must be what runs
    visible_devices_env = "ASCEND_RT_VISIBLE_DEVICES"
    distributed_backend = "hccl"
    sglang_flags = ("--device", "npu", "--attention-backend", "ascend")
    # Reductions in HCCL's collectives repeat bit for bit only with HCCL_DETERMINISTIC=true
    # (CANN's environment variable reference, "HCCL_DETERMINISTIC"; default false). The
    # operators' own deterministic mode is torch.use_deterministic_algorithms(True), which
    # torch_npu honours; the soak's workers set both.
    deterministic_env = MappingProxyType({"HCCL_DETERMINISTIC": "true"})
    # What changes how the box computes and times: the launch queue, inf/nan saturation
    # mode, operator init (ACL_OP_INIT_MODE), CPU core binding, blocking launches, HCCL
    # (HCCL_DETERMINISTIC among them).
    recorded_env_vars = ("ASCEND_RT_VISIBLE_DEVICES", "ASCEND_HOME_PATH", "TASK_QUEUE_ENABLE",
                         "PYTORCH_NPU_ALLOC_CONF", "ASCEND_LAUNCH_BLOCKING",
                         "INF_NAN_MODE_ENABLE", "ACL_OP_INIT_MODE", "CPU_AFFINITY_CONF",
                         "HCCL_DETERMINISTIC", "HCCL_*")
    fact_keys = ("torch_npu", "cann", "driver", "firmware", "npu_chip", "npu_hbm_total_mb",
                 "npu_jit_compile")
    required_facts: Mapping[str, str] = MappingProxyType({
        "torch_npu": "the torch-npu package",
        "cann": "torch_npu get_cann_version, ascend_toolkit_install.info under "
                "$ASCEND_HOME_PATH, or nnae/latest/ascend_nnae_install.info",
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
        """The Bus-Id row of the card's chip in `npu-smi info`. The card's index among the
        visible ones maps through ASCEND_RT_VISIBLE_DEVICES to a chip logic id (logical
        inside a container), and `npu-smi info -m` maps that to the NPU and chip ids the
        table is keyed by; None where either tool output lacks the card."""
        logic_id = visible_logic_id(device.index, os.environ)
        return bus_id_of(logic_id, run_tool(["npu-smi", "info", "-m"]),
                         run_tool(["npu-smi", "info"]))

    def profiler(self, trace_dir: Path) -> Any:
        """torch_npu's own profiler: torch.profiler sees no NPU operator."""
        from pytest_ascend.profiling.sessions import NpuProfilerSession

        return NpuProfilerSession(trace_dir)

    def telemetry(self, device: Any) -> Any:
        """npu-smi's figures for the card's chip, found as `bus_id` finds it."""
        from pytest_ascend.platforms.npu_telemetry import npu_telemetry
        from pytest_ascend.telemetry.reading import FIELDS, TelemetryReader

        logic_id = visible_logic_id(device.index, os.environ)

        def chip_ids() -> Optional[tuple[int, int]]:
            return parse_npu_smi_map(run_tool(["npu-smi", "info", "-m"])).get(logic_id)

        where = safe(chip_ids)
        if where is None:
            return TelemetryReader(card_label(device), [], {
                name: f"`npu-smi info -m` does not list chip logic id {logic_id} (is "
                      f"npu-smi on PATH?)" for name in FIELDS})
        return npu_telemetry(card_label(device), *where, tool=run_tool,
                             present=lambda: chip_ids() is not None)

    def stack_versions(self) -> list[tuple[str, Optional[str]]]:
        return [("torch_npu", package_version("torch_npu")), ("CANN", safe(cann_version))]

    def datasheet(self, device_name: str) -> Optional[DatasheetPeak]:
        return lookup_datasheet(DATASHEETS, device_name)

    def bf16_unsupported(self, device: Any) -> Optional[str]:
        """torch.npu.is_bf16_supported() (c10_npu::IsBF16Supported: SoC >= Ascend910B1)
        where this torch_npu has it, else the chip's generation."""
        ask = getattr(getattr(device, "backend", None), "is_bf16_supported", None)
        supported = bool(ask()) if ask is not None else _b1_or_later(device.name)
        return None if supported else (
            f"{device.name} has no bfloat16 (torch.npu.is_bf16_supported() is False: "
            f"bfloat16 needs Ascend910B1 or later)")

    def float32_matmul_reduced(self, device: Any) -> Optional[str]:
        """Below Ascend910B1, torch_npu initialises CANN with the precision mode
        allow_fp32_to_fp16, so a float32 matmul is computed in float16 (910B1 and later
        keep float32, with HF32 off by default: torch.npu.matmul.allow_hf32)."""
        if not _b1_or_later(device.name):
            return (f"float32 matmul runs in float16 on {device.name}: CANN's default "
                    f"precision mode below Ascend910B1 is allow_fp32_to_fp16")
        return None

    def sglang_unsupported(self, device: Any) -> Optional[str]:
        """SGLang on Ascend supports Atlas A2 (910B) and A3 (910C) only (docs.sglang.io,
        Ascend NPU reference, "Supported devices")."""
        if re.search(A2, device.name, re.IGNORECASE) or re.search(A3, device.name,
                                                                     re.IGNORECASE):
            return None
        return (f"SGLang does not support {device.name}: on Ascend it serves Atlas A2 "
                f"(Ascend910B1-B4) and A3 (910C) only")

    def first_use_compile_s(self, device: Any) -> float:
        """With JIT compilation on (the default below Ascend910B1, and wherever
        set_compile_mode(jit_compile=True) was called), each operator is compiled by CANN
        the first time it meets a shape: minutes on a 910A for a model's first forward."""
        jit = self._jit_compile() if getattr(device, "backend", None) is not None else None
        if jit is None:
            jit = not _b1_or_later(device.name)
        return JIT_FIRST_USE_S if jit else 0.0


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

        is_false = getattr(getattr(torch, "npu", None), "is_jit_compile_false", None)
        return None if is_false is None else not is_false()


# An allowance, not a measurement (no 910A was at hand): the first forward of a model on a
# chip that JIT-compiles its operators has been reported to take minutes; 15 minutes covers
# a 14B model's distinct shapes with room to spare. Refine it from a 910A run's warm-up.
JIT_FIRST_USE_S = 900.0


def _b1_or_later(name: str) -> bool:
    return re.search(B1_OR_LATER, name, re.IGNORECASE) is not None


def ascend_version_file(path: Path) -> Optional[str]:
    """Driver / firmware version from an Ascend version.info file."""
    values = parse_key_values(path.read_text())
    return values.get("package_version") or values.get("Version") or values.get("version")


def cann_version(
    environ: Optional[Mapping[str, str]] = None, root: Path = ASCEND_ROOT
) -> Optional[str]:
    """The CANN version, from torch_npu if it can tell, else from the toolkit's install
    file, else from the NNAE's (a box with the runtime but no toolkit)."""
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
    found.append(root / "nnae" / "latest" / "ascend_nnae_install.info")  # runtime only
    return [f for f in found if f.is_file()]


_NPU_ROW = re.compile(r"^\|\s*(\d+)\s+(\S+)\s*\|")
_CHIP_ROW = re.compile(r"^\|\s*(\d+)(?:\s+\d+)?\s*\|")  # `| 0 |`, or `| 0  0 |` (chip, device)
_USAGE_PAIR = re.compile(r"(\d+)\s*/\s*(\d+)")
_BUS_ID = re.compile(r"\b([0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-7])\b")


def parse_npu_smi(text: str) -> list[dict[str, Any]]:
    """Chip name, PCI bus id and HBM total (MB) per chip from `npu-smi info`.

    Each NPU takes a row `| <id> <Name> | <Health> | ...`, then one row per chip
    `| <chip> | <Bus-Id> | <AICore> <Memory used/total> <HBM used/total> |` (two on a 910C,
    whose dies are separate devices); the last used/total pair of a chip row is HBM where the
    chip has it (310P shows only Memory).
    """
    chips: list[dict[str, Any]] = []
    lines = text.split("Process id", 1)[0].splitlines()  # the process table repeats ids
    for i, line in enumerate(lines):
        match = _NPU_ROW.match(line)
        if not match or not re.search(r"[A-Za-z]", match.group(2)):
            continue
        for row in lines[i + 1:]:
            chip = _CHIP_ROW.match(row)
            if not chip:
                break
            pairs = _USAGE_PAIR.findall(row)
            bus = _BUS_ID.search(row)
            chips.append({
                "npu": int(match.group(1)),
                "chip": int(chip.group(1)),
                "name": match.group(2),
                "bus_id": bus.group(1).lower() if bus else None,
                "hbm_total_mb": int(pairs[-1][1]) if pairs else None,
            })
    return chips


def parse_npu_smi_map(text: str) -> dict[int, tuple[int, int]]:
    """Chip logic id -> (NPU id, chip id) from `npu-smi info -m`.

    Rows are `NPU ID  Chip ID  Chip Logic ID  Chip Name` separated by runs of spaces, under
    that header; a chip without a logic id (`-`: the board's Mcu) is no device.
    """
    mapping: dict[int, tuple[int, int]] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[0].isdigit() and fields[1].isdigit() \
                and fields[2].isdigit():
            mapping[int(fields[2])] = (int(fields[0]), int(fields[1]))
    return mapping


def visible_logic_id(index: int, environ: Mapping[str, str]) -> int:
    """The chip logic id of the card at `index` among those ASCEND_RT_VISIBLE_DEVICES
    shows (its ids are logic ids: inside a container, the container's own numbering)."""
    visible = [int(p) for p in environ.get("ASCEND_RT_VISIBLE_DEVICES", "").split(",")
               if p.strip().isdigit()]
    return visible[index] if index < len(visible) else index


def bus_id_of(logic_id: int, map_text: str, info_text: str) -> Optional[str]:
    """The bus id of the chip with `logic_id`, from `npu-smi info -m` and `npu-smi info`."""
    where = parse_npu_smi_map(map_text).get(logic_id)
    if where is None:
        return None
    return next((chip["bus_id"] for chip in parse_npu_smi(info_text)
                 if (chip["npu"], chip["chip"]) == where), None)
