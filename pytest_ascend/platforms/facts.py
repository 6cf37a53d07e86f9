"""Reading facts without failing: installed versions, key=value files, tool output, the host
CPU. A fact that cannot be read is None, never an exception: a report must be written even on
a half-configured machine."""

from __future__ import annotations

import platform
import shutil
import subprocess
from importlib import metadata
from typing import Any, Callable, Optional


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


def safe(fn: Callable[[], Any]) -> Any:
    """`fn()`, or None when it raises or finds nothing."""
    try:
        value = fn()
    except Exception:
        return None
    return value if value not in ("", []) else None


def parse_key_values(text: str) -> dict[str, str]:
    """`key=value` lines (the first of a repeated key wins); other lines are ignored."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out.setdefault(key.strip(), value.strip())
    return out


def run_tool(cmd: list[str], timeout: float = 10.0) -> str:
    """A tool's standard output; raises when it is missing, fails or hangs."""
    if shutil.which(cmd[0]) is None:
        raise FileNotFoundError(cmd[0])
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, check=True
    ).stdout


def cpu_model_name() -> str:
    """The host CPU's model name (/proc/cpuinfo), else what the platform module says."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"
