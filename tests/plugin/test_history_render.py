"""The history stays readable at nightly size: 300 runs in 15 CANN groups fit a 120-column
terminal table, why a change is not gated is said once, and the plot's group names do not
overlap."""

import math
import random

from pytest_ascend.history.gate import DEFAULT_METRICS, build_history
from pytest_ascend.history.render import TABLE_WIDTH, history_figure, render_table
from pytest_ascend.history.runs import Run

BENCHES = [f"tests/perf/test_single_request.py::test_single_request[workload_{i}]"
           for i in range(4)]


def nightly(count=300, groups=15, smoke=False):
    rng = random.Random(0)
    runs = []
    for index in range(count):
        number = index * groups // count
        group = f"8.{number}.RC{1 + number % 3}-build.{number:03d}"
        ascend = {"cann": group, "device_kind": "npu", "device_name": "Ascend910B3",
                  "model": "Qwen2.5-14B-Instruct", "dtype": "float16", "smoke": smoke}
        benches = [{"name": name.split("::")[1], "fullname": name, "stats": {"median": 1.0},
                    "extra_info": {metric: 10.0 * math.exp(rng.gauss(0, 0.03))
                                   for metric in ("ttft_ms", "tpot_ms", "output_tokens_per_s",
                                                  "roofline_fraction")}}
                   for name in BENCHES]
        runs.append(Run(f"run-{index:03d}.json", f"2026-{1 + index // 28 % 12:02d}-"
                        f"{1 + index % 28:02d}T02:{index // 336:02d}:00", {"ascend": ascend},
                        benches))
    return runs


def test_300_runs_in_15_groups_fit_120_columns_and_say_each_reason_once():
    table = render_table(build_history(nightly(smoke=True)))
    lines = table.splitlines()
    assert max(len(line) for line in lines) <= TABLE_WIDTH
    assert table.count("not gated: smoke run") == 1
    assert "older group(s) not shown here" in table
    hardware = render_table(build_history(nightly()))
    assert max(len(line) for line in hardware.splitlines()) <= TABLE_WIDTH


def test_two_groups_show_both_columns():
    runs = [run for run in nightly(count=40, groups=2)]
    table = render_table(build_history(runs))
    assert "older group(s)" not in table
    assert "8.0.RC1-build.000 (20 runs)" in table and "8.1.RC2-build.001 (20 runs)" in table


def test_the_plot_names_groups_without_overlap():
    figure = history_figure(build_history(nightly(), metrics=DEFAULT_METRICS))
    renderer = figure.canvas.get_renderer()
    for ax in figure.axes:
        boxes = [label.get_window_extent(renderer) for label in ax.get_xticklabels()
                 if label.get_visible() and label.get_text()]
        assert len(boxes) >= 3
        assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
