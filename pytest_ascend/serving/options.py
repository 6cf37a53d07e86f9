"""The options of SGLang serving: the server under test and the load sweep run against it."""

from __future__ import annotations

from typing import Mapping

from pytest_ascend import numbers
from pytest_ascend.options import OptionGroup, OptionSpec, SettingsError
from pytest_ascend.serving.goodput import DEFAULT_SLO, Slo
from pytest_ascend.serving.load import ARRIVALS
from pytest_ascend.serving.workloads import Lengths

PLUGIN_SGLANG_FLAGS = ("--port", "--host")  # where the plugin finds the server it launched


def _rates(text: str) -> tuple[float, ...]:
    try:
        rates = tuple(float(item) for item in text.split(","))
    except ValueError:
        rates = ()
    if not rates or not all(rate > 0 for rate in rates):
        raise ValueError("not a comma-separated list of positive request rates (e.g. 1,2,4,8)")
    return tuple(sorted(set(rates)))


def _no_plugin_flags(values: Mapping[str, object], sources: Mapping[str, str]) -> None:
    for arg in values["sglang_arg"]:  # type: ignore[union-attr]
        flag = str(arg).split("=", 1)[0]
        if flag in PLUGIN_SGLANG_FLAGS:
            raise SettingsError(
                f"--sglang-arg {arg} ({sources['sglang_arg']}): the plugin chooses {flag} of "
                f"the server it launches (127.0.0.1, a free port) and polls it there; drop "
                f"it, or start the server yourself and pass --sglang-url")


SGLANG_OPTIONS = OptionGroup("SGLang serving", (
    OptionSpec(
        "sglang_url",
        "--sglang-url",
        "base URL of a running SGLang server to test (tests marked sglang)",
        metavar="URL",
    ),
    OptionSpec(
        "sglang_launch",
        "--sglang-launch",
        "start an SGLang server for the session's model on the device under test "
        "(127.0.0.1, a free port; stopped with its whole process tree at session end)",
        default=False,
        is_flag=True,
    ),
    OptionSpec(
        "sglang_arg",
        "--sglang-arg",
        "extra argument for the launched server, repeatable: --sglang-arg=--tp-size "
        "--sglang-arg=2 (env/ini: one shell-quoted string)",
        default=(),
        metavar="ARG",
        is_list=True,
    ),
    OptionSpec(
        "sglang_python",
        "--sglang-python",
        "Python interpreter that has sglang installed, for --sglang-launch",
        default_text="the one running pytest",
        metavar="PATH",
        is_path=True,
    ),
    OptionSpec(
        "sglang_timeout",
        "--sglang-timeout",
        "seconds to wait for a launched server to become healthy",
        default=600,
        metavar="SECONDS",
        is_seconds=True,
    ),
    OptionSpec(
        "sglang_slo",
        "--sglang-slo",
        "latency targets of the serving sweep, per request, in ms (keys ttft_ms, tpot_ms, "
        "e2e_ms); goodput counts the requests meeting all, saturation is the highest rate "
        "whose P99s meet them (default: MLPerf Llama-2-70B Server's)",
        default=DEFAULT_SLO,
        metavar="KEY=MS,...",
        parse=Slo.parse,
    ),
    OptionSpec(
        "sglang_rates",
        "--sglang-rates",
        "request rates (req/s) the serving sweep offers in turn, until the server saturates",
        default_text="1,2,4,8,16,32,64; 4,8,16 on the built-in tiny model",
        metavar="R1,R2,...",
        parse=_rates,
    ),
    OptionSpec(
        "sglang_requests",
        "--sglang-requests",
        "requests the serving sweep sends at each rate",
        default_text="100; 24 on the built-in tiny model",
        metavar="N",
        parse=numbers.count,
    ),
    OptionSpec(
        "sglang_lengths",
        "--sglang-lengths",
        "input and output tokens of the sweep's random requests, INPUT:OUTPUT[:RANGE_RATIO] "
        "(lengths drawn from [ratio x length, length], as bench_serving's random dataset)",
        default="256:64",
        metavar="IN:OUT[:R]",
        parse=Lengths.parse,
    ),
    OptionSpec(
        "sglang_arrival",
        "--sglang-arrival",
        "inter-arrival times of the sweep's requests: poisson, constant, or burst (all at once)",
        default="poisson",
        choices=ARRIVALS,
    ),
    OptionSpec(
        "sglang_max_concurrency",
        "--sglang-max-concurrency",
        "cap on requests in flight during the sweep (a request waits for a slot)",
        default_text="no cap",
        metavar="N",
        parse=numbers.count,
    ),
), checks=(_no_plugin_flags,))
