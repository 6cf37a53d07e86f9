"""The options of measuring: which bounds are asserted, how often memory is sampled."""

from __future__ import annotations

from pytest_ascend.options import OptionGroup, OptionSpec


MEASURE_OPTIONS = OptionGroup("measuring", (
    OptionSpec(
        "assert_perf",
        "--ascend-assert-perf",
        "assert performance bounds (speedups, scaling, overhead) on the built-in tiny model "
        "too; on a real model they are always asserted, on a smoke run otherwise reported",
        default=False,
        is_flag=True,
    ),
    OptionSpec(
        "expect_spec_speedup",
        "--ascend-expect-spec-speedup",
        "fail the speculative-decoding benchmark unless it beats plain greedy decoding (for "
        "real target/draft pairs, e.g. Qwen2.5-14B with Qwen2.5-0.5B; off: reported only)",
        default=False,
        is_flag=True,
    ),
    OptionSpec(
        "memory_interval",
        "--ascend-memory-interval",
        "seconds between samples of the memory_sampler fixture",
        default=0.05,
        metavar="SECONDS",
        is_seconds=True,
    ),
))
