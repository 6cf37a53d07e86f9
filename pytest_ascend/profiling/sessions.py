"""The profilers a platform captures with: torch.profiler (CPU, CUDA) and torch_npu's
profiler (NPU). Each is a context manager around one call of a timed region; `profile()`
afterwards gives the operator table, and the raw trace is left in the trace folder.

torch_npu's profiler (Ascend Extension for PyTorch, `torch_npu.profiler.profile`,
hiascend.com "torch_npu.profiler.profile" and Ascend/op-plugin
docs/zh/custom_APIs/torch_npu-profiler/torch_npu-profiler-profile.md) takes
`activities=[ProfilerActivity.CPU, ProfilerActivity.NPU]`, an `experimental_config`
(`_ExperimentalConfig(profiler_level=ProfilerLevel.Level0)`: operator durations only, the
least intrusive level) and `on_trace_ready=tensorboard_trace_handler(dir)`, which parses the
raw data when the profile ends into `dir/{worker}_{time}_ascend_pt/ASCEND_PROFILER_OUTPUT/`
(hiascend.com, "Data Storing Directories"); its `kernel_details.csv` holds every operator
executed on the NPU (controlled by ProfilerActivity.NPU).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from pytest_ascend.profiling.operators import (
    OperatorTime,
    Profile,
    from_kernel_details,
    from_key_averages,
)

TORCH_TRACE = "trace.json.gz"  # Chrome trace format: Perfetto and chrome://tracing read it


class TorchProfilerSession:
    """torch.profiler on the host, and on the device where `device_activity` names one
    (a `torch.profiler.ProfilerActivity` member: CUDA)."""

    def __init__(self, trace_dir: Path, device_activity: Optional[str]) -> None:
        self.trace_dir = trace_dir
        self.device_activity = device_activity
        self._profiler: Any = None

    def __enter__(self) -> "TorchProfilerSession":
        from torch.profiler import ProfilerActivity, profile

        activities = [ProfilerActivity.CPU]
        if self.device_activity:
            activities.append(getattr(ProfilerActivity, self.device_activity))
        self._profiler = profile(activities=activities)
        self._profiler.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._profiler.__exit__(*exc)

    def profile(self) -> Profile:
        self.trace_dir.mkdir(parents=True, exist_ok=True)
        self._profiler.export_chrome_trace(str(self.trace_dir / TORCH_TRACE))
        device = bool(self.device_activity)
        operators: dict[str, OperatorTime] = from_key_averages(
            self._profiler.key_averages(), device=device)
        return Profile("torch.profiler", "device" if device else "host", operators,
                       TORCH_TRACE)


class NpuProfilerSession:
    """torch_npu.profiler at Level0, its output parsed where it wrote it."""

    def __init__(self, trace_dir: Path) -> None:
        self.trace_dir = trace_dir
        self._profiler: Any = None

    def __enter__(self) -> "NpuProfilerSession":
        import torch_npu

        npu_profiler = torch_npu.profiler
        self.trace_dir.mkdir(parents=True, exist_ok=True)
        self._profiler = npu_profiler.profile(
            activities=[npu_profiler.ProfilerActivity.CPU, npu_profiler.ProfilerActivity.NPU],
            experimental_config=npu_profiler._ExperimentalConfig(
                profiler_level=npu_profiler.ProfilerLevel.Level0),
            on_trace_ready=npu_profiler.tensorboard_trace_handler(str(self.trace_dir)))
        self._profiler.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._profiler.__exit__(*exc)

    def profile(self) -> Profile:
        details = newest_kernel_details(self.trace_dir)
        return Profile("torch_npu.profiler", "device", from_kernel_details(details),
                       str(details.parent.parent.relative_to(self.trace_dir)))


def newest_kernel_details(trace_dir: Path) -> Path:
    """The kernel_details.csv of the newest `*_ascend_pt` folder under `trace_dir`."""
    found = sorted(trace_dir.glob("*_ascend_pt/ASCEND_PROFILER_OUTPUT/kernel_details.csv"),
                   key=lambda path: path.stat().st_mtime)
    if not found:
        raise ValueError(f"torch_npu's profiler wrote no ASCEND_PROFILER_OUTPUT/"
                         f"kernel_details.csv under {trace_dir}")
    return found[-1]
