"""The option of profiling: which tests' timed regions are profiled."""

from __future__ import annotations

from pytest_ascend.options import OptionGroup, OptionSpec
from pytest_ascend.profiling.capture import parse_selection

PROFILE_OPTIONS = OptionGroup("profiling", (
    OptionSpec(
        "profile",
        "--ascend-profile",
        "profile the timed region of the tests this expression selects (as -k reads it: "
        "words of a test's name or markers, with and/or/not): after its measured rounds, "
        "three more calls under the platform's profiler (torch_npu's on an NPU, "
        "torch.profiler elsewhere), each operator's median over them; the trace is stored "
        "beside the benchmark run and each operator's self time in the benchmark's "
        "extra_info, for `pytest-ascend history --diff-profiles`",
        metavar="EXPR",
        parse=parse_selection,
    ),
))
