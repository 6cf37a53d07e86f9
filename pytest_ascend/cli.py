"""The `pytest-ascend` command (also `python -m pytest_ascend`).

`pytest-ascend history` compares benchmark runs grouped by CANN version (or any
machine_info key) and can gate a nightly job on regressions. Exit codes: 0 fine, 1 a
regression with --fail-on-regression (and nothing else: a nightly job reads 1 as "the new
stack is slower"), 2 bad usage or nothing to compare, 3 an internal error of this tool.

`pytest-ascend golden record --out DIR` writes the golden outputs a later run compares
with (`pytest -m npu --ascend-golden=DIR`). Exit codes: 0 written, 2 bad usage (a golden
already there without --force, a model that cannot load), 3 an internal error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from pytest_ascend.errors import one_line
from pytest_ascend.model.arithmetic import DTYPE_BYTES
from pytest_ascend.history import gate as hist
from pytest_ascend.history.runs import HistoryError, load_runs

FORMATS = ("table", "json", "markdown")
DTYPE_CHOICES = tuple(DTYPE_BYTES)
EXIT_OK, EXIT_REGRESSION, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3


def _fraction(text: str) -> float:
    try:
        value = float(text.rstrip("%")) / (100 if text.endswith("%") else 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (e.g. 0.1 or 10%)") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must not be negative")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pytest-ascend",
        description="Tools around the pytest-ascend suite. Run the suite itself with "
        "`pytest -m npu` (see `pytest --help`, section pytest-ascend).",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    history = commands.add_parser(
        "history",
        help="compare benchmark runs across CANN (or other) versions; gate on regressions",
        description="Read pytest-benchmark storage written by pytest-ascend runs, group the "
        "runs by a machine_info key within each device/model/dtype/smoke context, and show "
        "each metric's median, spread and change per group. Exit 1 with --fail-on-regression "
        "when a metric got worse by more than max(--min-change, --noise-factor x the runs' "
        "relative IQR); exit 2 when there is nothing to compare.",
    )
    history.add_argument("--storage", default=None, metavar="URI",
                         help="pytest-benchmark storage, as --benchmark-storage takes it: a "
                         "directory, file://PATH or elasticsearch+http[s]://... (default: "
                         ".benchmarks, unless only --json files are given)")
    history.add_argument("--json", type=Path, action="append", default=[], metavar="FILE",
                         help="a --benchmark-json file to include (repeatable)")
    history.add_argument("--group-by", default=hist.DEFAULT_GROUP_BY, metavar="KEY",
                         help="dotted machine_info key to group runs by (default: "
                         "ascend.cann; e.g. ascend.torch_npu, ascend.driver)")
    history.add_argument("--metric", action="append", default=None, metavar="NAME",
                         help="metric to compare (repeatable): time or an extra_info key "
                         f"(default: {', '.join(hist.DEFAULT_METRICS)})")
    history.add_argument("--baseline", default=None, metavar="GROUP",
                         help="group every other group is compared with (default: the "
                         "previous group)")
    history.add_argument("--fail-on-regression", action="store_true",
                         help="exit 1 when any metric regressed")
    history.add_argument("--min-change", type=_fraction, default=0.15, metavar="FRACTION",
                         help="smallest relative change that can count (default 0.15 = 15%%; "
                         "lower it where timings are stable)")
    history.add_argument("--noise-factor", type=_fraction, default=3.0, metavar="K",
                         help="a change must also exceed K x the relative IQR (default 3)")
    history.add_argument("--plot", type=Path, default=None, metavar="PNG",
                         help="write a plot: one panel per metric, by group")
    history.add_argument("--html", type=Path, default=None, metavar="HTML",
                         help="write a self-contained HTML page (tables and plot)")
    history.add_argument("--format", choices=FORMATS, default="table",
                         help="what to print (default: table)")
    golden = commands.add_parser(
        "golden", help="record golden outputs to compare later runs with",
        description="Golden outputs: greedy tokens, top-k log-probabilities and perplexity "
        "of a model, recorded once on a trusted machine (float32 on a CPU works) and compared "
        "with every later run by `pytest -m npu --ascend-golden=DIR`.")
    golden_commands = golden.add_subparsers(dest="golden_command", metavar="ACTION")
    record = golden_commands.add_parser(
        "record", help="record a golden into --out DIR",
        description="Load the model on the device, decode the seed workloads and a "
        "long-context prompt greedily, and write golden.json (readable) and "
        "golden.safetensors (the log-probabilities) into DIR.")
    record.add_argument("--out", type=Path, required=True, metavar="DIR",
                        help="directory to write the golden into")
    record.add_argument("--model", default="tiny", metavar="PATH|tiny",
                        help="checkpoint directory, or tiny for the built-in model (default)")
    record.add_argument("--device", default="auto", metavar="KIND",
                        help="platform kind (cpu, cuda, npu) or auto (default)")
    record.add_argument("--dtype", default="float32", choices=DTYPE_CHOICES,
                        help="dtype to record in (default float32: the reference every "
                        "lower-precision run is held to)")
    record.add_argument("--cache", type=Path, default=None, metavar="DIR",
                        help="cache for the built-in model and weight checksums (default: "
                        "as --ascend-cache)")
    record.add_argument("--trust-remote-code", action="store_true",
                        help="allow the checkpoint's own modelling code")
    record.add_argument("--force", action="store_true",
                        help="replace a golden already in --out")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    command = {"history": run_history,
               "golden": run_golden if getattr(args, "golden_command", None) else None
               }.get(args.command)
    if command is None:
        parser.print_help()
        return EXIT_OK
    try:
        return command(args)
    except Exception as exc:  # a bug here must never read as a regression (exit 1)
        print(f"pytest-ascend {args.command}: internal error: {one_line(exc)} (please report "
              f"it with the command and its input files)", file=sys.stderr)
        return EXIT_INTERNAL


def run_golden(args: argparse.Namespace) -> int:
    from pytest_ascend.numerics.recording import RecordingError, record_golden_dir

    def say(message: str) -> None:
        print(f"pytest-ascend golden: {message}", file=sys.stderr, flush=True)

    try:
        golden = record_golden_dir(
            args.model, args.out, device=args.device, dtype=args.dtype, cache_dir=args.cache,
            trust_remote_code=args.trust_remote_code, force=args.force, progress=say)
    except RecordingError as exc:
        say(str(exc))
        return EXIT_USAGE
    positions = sum(len(p.tokens) for p in golden.prompts)
    print(f"wrote {golden.describe()} into {args.out}: {len(golden.prompts)} prompts, "
          f"{positions} positions, perplexity {golden.perplexity['perplexity']:.6g}")
    return EXIT_OK


def run_history(args: argparse.Namespace) -> int:
    from pytest_ascend.history import render as report

    storage = args.storage
    if storage is None and not args.json:
        storage = ".benchmarks"
    try:
        runs, skipped = load_runs(storage, args.json)
        for item in skipped:
            print(f"pytest-ascend history: skipped {item.source}: {item.reason}",
                  file=sys.stderr)
        history = hist.build_history(
            runs, group_by=args.group_by, metrics=args.metric or hist.DEFAULT_METRICS,
            baseline=args.baseline, min_change=args.min_change,
            noise_factor=args.noise_factor, skipped=skipped,
        )
    except HistoryError as exc:
        print(f"pytest-ascend history: {exc}", file=sys.stderr)
        return EXIT_USAGE
    render = {"table": report.render_table, "json": report.render_json,
              "markdown": report.render_markdown}[args.format]
    print(render(history))
    for path, write in ((args.plot, report.write_plot), (args.html, report.write_html)):
        if path is not None:
            try:
                write(history, path)
            except (OSError, ValueError) as exc:
                print(f"pytest-ascend history: cannot write {path}: {exc}", file=sys.stderr)
                return EXIT_USAGE
    return EXIT_REGRESSION if args.fail_on_regression and history.regressions else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
