"""Versions and hardware facts: what a result was measured on.

A benchmark is only comparable with another taken on the same stack, so every run records
the CANN, driver and firmware versions next to torch / torch_npu / transformers / sglang,
the chip and the environment variables that change NPU behaviour. Every field is present in
every run; a fact that cannot be read is None, never an exception.

Sources (Ascend): CANN via `torch_npu.npu.utils.get_cann_version(module="CANN")` (torch_npu
7.0.0+, returns "" before CANN 8.1.RC1), else the `version=` line of
ascend_toolkit_install.info under $ASCEND_HOME_PATH, /usr/local/Ascend/ascend-toolkit/latest
(CANN <= 8.x) or /usr/local/Ascend/cann (8.5+), `<arch>-linux/` inside each. `torch.version.cann`
is avoided: with ASCEND_HOME_PATH unset it walks the current directory
(torch_npu/utils/collect_env.py). Driver and firmware: key=value files
/usr/local/Ascend/{driver,firmware}/version.info (`package_version=` preferred over
`Version=`). Chip and HBM: `npu-smi info`, two table rows per NPU.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

ASCEND_ROOT = Path("/usr/local/Ascend")
RECORDED_ENV_VARS = (
    "ASCEND_RT_VISIBLE_DEVICES",
    "ASCEND_HOME_PATH",
    "TASK_QUEUE_ENABLE",
    "PYTORCH_NPU_ALLOC_CONF",
    "ASCEND_LAUNCH_BLOCKING",
    "CUDA_VISIBLE_DEVICES",
    "PYTORCH_CUDA_ALLOC_CONF",
    "OMP_NUM_THREADS",
)
PACKAGES = ("torch", "torch_npu", "transformers", "tokenizers", "sglang", "pytest_ascend")


def package_version(name: str) -> Optional[str]:
    """Installed version without importing the package (importing torch_npu walks the cwd
    and fails where CANN is absent)."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        try:
            return metadata.version(name.replace("_", "-"))
        except metadata.PackageNotFoundError:
            return None


def gather_environment(device: Any) -> dict[str, Any]:
    """All facts for `device` (a DeviceUnderTest); keys are the same for every device kind."""
    env: dict[str, Any] = {
        "device_kind": device.kind,
        "device_name": device.name,
        "device_count": _safe(lambda: _device_count(device)),
        "device_memory_total": _safe(lambda: device.memory().total),
        "memory_source": device.memory_source,
    }
    env.update({name: package_version(name) for name in PACKAGES})
    env.update(
        python=platform.python_version(),
        os=f"{platform.system()} {platform.release()}",
        os_release=_safe(_os_pretty_name),
        machine=platform.machine(),
        cpu=_safe(_cpu_name),
        cpu_count=os.cpu_count(),
        memory_total=_safe(_host_memory_total),
        cuda=_safe(_torch_cuda_version),
        cuda_driver=_safe(_nvidia_driver) if device.kind == "cuda" else None,
        cann=_safe(cann_version),
        driver=_safe(lambda: ascend_version_file(ASCEND_ROOT / "driver" / "version.info")),
        firmware=_safe(lambda: ascend_version_file(ASCEND_ROOT / "firmware" / "version.info")),
        npu_chip=None,
        npu_hbm_total_mb=None,
        npu_jit_compile=_safe(_npu_jit_compile) if device.kind == "npu" else None,
        env_vars={k: v for k, v in sorted(os.environ.items()) if _recorded_env_var(k)},
    )
    if device.kind == "npu":
        chips = _safe(lambda: parse_npu_smi(_run(["npu-smi", "info"])))
        if chips:
            env["npu_chip"] = chips[0]["name"]
            env["npu_hbm_total_mb"] = chips[0]["hbm_total_mb"]
    return env


def _recorded_env_var(name: str) -> bool:
    return name in RECORDED_ENV_VARS or name.startswith("HCCL_")


def _safe(fn: Callable[[], Any]) -> Any:
    try:
        value = fn()
    except Exception:
        return None
    return value if value not in ("", []) else None


def _device_count(device: Any) -> int:
    return int(device.backend.device_count()) if device.is_accelerator else 1


def _torch_cuda_version() -> Optional[str]:
    import torch

    return torch.version.cuda


def _cpu_name() -> str:
    from pytest_ascend.platforms.device import cpu_model_name

    return cpu_model_name()


def _host_memory_total() -> int:
    import psutil

    return int(psutil.virtual_memory().total)


def _os_pretty_name() -> Optional[str]:
    return parse_key_values(Path("/etc/os-release").read_text()).get("PRETTY_NAME", "").strip('"')


def _run(cmd: list[str], timeout: float = 10.0) -> str:
    if shutil.which(cmd[0]) is None:
        raise FileNotFoundError(cmd[0])
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, check=True
    ).stdout


def _nvidia_driver() -> str:
    out = _run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"])
    return out.strip().splitlines()[0]


def _npu_jit_compile() -> Optional[bool]:
    import torch

    is_false = getattr(torch.npu, "is_jit_compile_false", None)
    return None if is_false is None else not is_false()


def parse_key_values(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out.setdefault(key.strip(), value.strip())
    return out


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


def parse_npu_smi(text: str) -> list[dict[str, Any]]:
    """Chip name and HBM total (MB) per NPU from `npu-smi info`.

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
        chips.append(
            {
                "npu": int(match.group(1)),
                "name": match.group(2),
                "hbm_total_mb": int(pairs[-1][1]) if pairs else None,
            }
        )
    return chips
