"""The `pytest-ascend` command (also `python -m pytest_ascend`).

`pytest-ascend history` compares benchmark runs grouped by CANN version (or any
machine_info key) and can gate a nightly job on regressions. Exit codes: 0 fine, 1 a
regression with --fail-on-regression (and nothing else: a nightly job reads 1 as "the new
stack is slower"), 2 bad usage or nothing to compare, 3 an internal error of this tool.

`pytest-ascend fleet RESULTS...` compares many boxes' runs and names the outliers. Exit
codes: 0 none, 1 a box flagged, 2 nothing to compare (fewer than 3 boxes in every group, no
runs, a path that does not exist), 3 an internal error.

`pytest-ascend nightly --out DIR --storage DIR -- PYTEST_ARGS` runs one night: the suite
with every report on into its own folder, the history gated and written beside it. Exit
codes: 0 fine, 1 a regression, 2 nothing earlier to compare with, 3 an internal error, 4 a
test failed, 5 stopped by SIGTERM or Ctrl-C (reports written), 6 the suite could not run.

`pytest-ascend golden record --out DIR` writes the golden outputs a later run compares
with (`pytest -m npu --ascend-golden=DIR`). Exit codes: 0 written, 2 bad usage (a golden
already there without --force, a model that cannot load), 3 an internal error.

`pytest-ascend plan --box=8x32GiB --model=DIR` shows where a session would put the suite's
model, the torchrun jobs and (--sglang) the SGLang server on a described box: the session's
own planner (box.placement), with no device and no weights (it reads config.json). Exit
codes: 0 a plan printed (parts that do not fit are listed as skipped, with why), 2 bad
usage (a --box it cannot read, a model directory without a usable config.json), 3 an
internal error.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Callable, Optional, Sequence

from pytest_ascend import numbers
from pytest_ascend.errors import one_line
from pytest_ascend.history import gate as hist
from pytest_ascend.history.explain import set_aside_throttled
from pytest_ascend.history.runs import HistoryError, load_runs
from pytest_ascend.platforms.options import DTYPE_CHOICES
from pytest_ascend.settings import SettingsError, resolve_settings

FORMATS = ("table", "json", "markdown")
EXIT_OK, EXIT_REGRESSION, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3


def _argument(read: Callable[[str], float]) -> Callable[[str], float]:
    """One of pytest_ascend.numbers' readers, as an argparse type: the plugin's options and
    this command read numbers alike ("10%" is 0.1 in both)."""
    def parse(text: str) -> float:
        try:
            return read(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None

    return parse


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
                         help="exit 1 when any metric regressed (by the gate --gate names)")
    history.add_argument("--gate", choices=("groups", "steps", "both"), default="both",
                         help="what --fail-on-regression judges: each version group against "
                         "the one before (groups), steps fitted along the nights of each "
                         "metric (steps), or either (both, the default)")
    history.add_argument("--min-change", type=_argument(numbers.non_negative), default=0.15, metavar="FRACTION",
                         help="smallest relative change that can count (default 0.15 = 15%%; "
                         "lower it where timings are stable)")
    history.add_argument("--noise-factor", type=_argument(numbers.non_negative), default=3.0, metavar="K",
                         help="a change must also exceed K x the relative IQR (default 3)")
    history.add_argument("--plot", type=Path, default=None, metavar="PNG",
                         help="write a plot: one panel per metric, by group")
    history.add_argument("--html", type=Path, default=None, metavar="DIR",
                         help="write the history's site into DIR: index.html (what moved) "
                         "and a page per box, opened from the file, no server")
    history.add_argument("--format", choices=FORMATS, default="table",
                         help="what to print (default: table)")
    history.add_argument("--diff-profiles", nargs=2, default=None, metavar=("RUN_A", "RUN_B"),
                         help="instead: rank the operators whose self time changed most "
                         "between two runs' profiles (--ascend-profile); a run is a file or "
                         "the start of a stored run's name (0007)")
    fleet = commands.add_parser(
        "fleet", help="compare many boxes' runs and name the odd one out",
        description="Read the benchmark runs of many boxes (storage directories or "
        "--benchmark-json files; each run names its host in machine_info), compare each box "
        "with the fleet's median within its device/model/dtype and CANN version, and with "
        "its own earlier runs. Exit 1 when a box is flagged, 2 when nothing can be compared.")
    fleet.add_argument("results", nargs="+", type=Path, metavar="RESULTS",
                       help="a benchmark storage directory or a --benchmark-json file")
    fleet.add_argument("--metric", action="append", default=None, metavar="NAME",
                       help=f"metric to compare (default: {', '.join(hist.DEFAULT_METRICS)})")
    fleet.add_argument("--threshold", type=_argument(numbers.non_negative), default=5.0,
                       metavar="Z", help="modified z-score that flags a box (default 5)")
    fleet.add_argument("--min-gap", type=_argument(numbers.non_negative), default=0.05,
                       metavar="FRACTION", help="smallest gap from the median that can flag a "
                       "box (default 0.05)")
    fleet.add_argument("--across-versions", action="store_true",
                       help="compare boxes on different CANN versions with each other")
    fleet.add_argument("--png", type=Path, default=None, metavar="PNG",
                       help="write the box x metric heat map")
    fleet.add_argument("--json", type=Path, default=None, metavar="FILE",
                       help="write everything as JSON")
    nightly = commands.add_parser(
        "nightly", help="run the suite, store the run, gate it, write the history's pages",
        description="One night in one command: `pytest -m npu` with the arguments after "
        "`--`, with every report on, into OUT/<UTC time>/; then the history of --storage "
        "gated (--gate) and written beside the reports. Exit codes: 0 fine, 1 a regression, "
        "2 nothing earlier to compare with, 3 an internal error of this tool, 4 a test "
        "failed, 5 stopped (SIGTERM, Ctrl-C; the reports are written), 6 the suite could not "
        "run.")
    nightly.add_argument("--out", type=Path, required=True, metavar="DIR",
                         help="where each night's folder goes")
    nightly.add_argument("--storage", type=Path, required=True, metavar="DIR",
                         help="pytest-benchmark storage kept across nights")
    nightly.add_argument("--gate", choices=("groups", "steps", "both"), default="both",
                         help="what counts as a regression (as history --gate)")
    nightly.add_argument("--group-by", default=hist.DEFAULT_GROUP_BY, metavar="KEY")
    nightly.add_argument("--min-change", type=_argument(numbers.non_negative), default=0.15,
                         metavar="FRACTION")
    nightly.add_argument("--noise-factor", type=_argument(numbers.non_negative), default=3.0,
                         metavar="K")
    nightly.add_argument("pytest_args", nargs=argparse.REMAINDER, metavar="-- PYTEST_ARGS",
                         help="the suite's own arguments (--ascend-model=..., test paths)")
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
    record.add_argument("--model", default=None, metavar="PATH|tiny",
                        help="checkpoint directory, or tiny for the built-in model (default: "
                        "as --ascend-model, so PYTEST_ASCEND_MODEL holds here too)")
    record.add_argument("--device", default=None, metavar="KIND",
                        help="platform kind (cpu, cuda, npu) or auto (default: as "
                        "--ascend-device)")
    record.add_argument("--dtype", default="float32", choices=DTYPE_CHOICES,
                        help="dtype to record in (default float32: the reference every "
                        "lower-precision run is held to)")
    record.add_argument("--cache", type=Path, default=None, metavar="DIR",
                        help="cache for the built-in model and weight checksums (default: "
                        "as --ascend-cache, so PYTEST_ASCEND_CACHE holds here too)")
    record.add_argument("--trust-remote-code", action="store_true",
                        help="allow the checkpoint's own modelling code")
    record.add_argument("--force", action="store_true",
                        help="replace a golden already in --out")
    plan = commands.add_parser(
        "plan", help="show where the suite's model, torchrun jobs and SGLang server go on a box",
        description="Dry-run the session's placement plan on a described box: no device and no "
        "weights are needed, only the model's config.json. Every card is taken as empty "
        "(free = capacity).")
    plan.add_argument("--box", required=True, metavar="NxSIZE",
                      help="the cards: count x capacity with a unit, e.g. 8x32GiB (Atlas "
                      "800T), 8x64GiB (800T A2), 16x64GiB (A3), 1x80GB (H100)")
    plan.add_argument("--model", required=True, metavar="DIR|tiny",
                      help="checkpoint directory (only its config.json is read), or tiny")
    plan.add_argument("--sglang", action="store_true",
                      help="also place the server --sglang-launch starts")
    plan.add_argument("--dtype", default="float16", choices=DTYPE_CHOICES,
                      help="dtype the model runs in (default float16)")
    plan.add_argument("--json", action="store_true",
                      help='print {"cards": [...], "skipped": {...}} instead of a table')
    return parser


_BOX = re.compile(r"(\d+)\s*x\s*(\d+(?:\.\d+)?)\s*(GiB|GB|TiB|TB)", re.IGNORECASE)
_UNITS = {"gib": 1 << 30, "gb": 10**9, "tib": 1 << 40, "tb": 10**12}
BOX_FORM = "COUNTxSIZE with a unit (GiB, GB, TiB, TB), e.g. 8x32GiB or 1x141GB"


def parse_box(text: str) -> tuple[int, int]:
    """(card count, bytes per card) of a --box value; ValueError saying what is wrong."""
    match = _BOX.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"--box {text!r}: not {BOX_FORM}")
    count, size = int(match.group(1)), float(match.group(2))
    if count < 1 or size <= 0:
        raise ValueError(f"--box {text!r}: the count and the size must be positive ({BOX_FORM})")
    return count, int(size * _UNITS[match.group(3).lower()])


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    command = {"history": run_history, "plan": run_plan, "nightly": run_nightly,
               "fleet": run_fleet,
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

    given = {"model": args.model, "device": args.device, "cache": args.cache,
             "trust_remote_code": args.trust_remote_code or None}
    try:  # the plugin's own resolution: these flags > PYTEST_ASCEND_* > defaults
        settings = resolve_settings(cli=lambda spec: given.get(spec.name),
                                    ini=lambda spec: None)
    except SettingsError as exc:
        say(str(exc))
        return EXIT_USAGE
    try:
        golden = record_golden_dir(
            settings.model, args.out, device=settings.device, dtype=args.dtype,
            cache_dir=settings.cache, trust_remote_code=settings.trust_remote_code,
            force=args.force, progress=say)
    except RecordingError as exc:
        say(str(exc))
        return EXIT_USAGE
    positions = sum(len(p.tokens) for p in golden.prompts)
    print(f"wrote {golden.describe()} into {args.out}: {len(golden.prompts)} prompts, "
          f"{positions} positions, perplexity {golden.perplexity['perplexity']:.6g}")
    return EXIT_OK


def _write_outputs(command: str, subject: object,
                   outputs: Sequence[tuple[Optional[Path], Callable[[object, Path], None]]]
                   ) -> bool:
    """Write each output that was asked for; False, with one line, at the first that fails."""
    for path, write in outputs:
        if path is not None:
            try:
                write(subject, path)
            except (OSError, ValueError) as exc:
                print(f"pytest-ascend {command}: cannot write {path}: {exc}", file=sys.stderr)
                return False
    return True


def run_fleet(args: argparse.Namespace) -> int:
    from pytest_ascend.fleet import render as fleet_render
    from pytest_ascend.fleet.compare import compare_fleet, read_results

    try:
        runs, skipped = read_results(args.results)
    except HistoryError as exc:
        print(f"pytest-ascend fleet: {exc}", file=sys.stderr)
        return EXIT_USAGE
    report = compare_fleet(runs, args.metric or hist.DEFAULT_METRICS,
                           across_versions=args.across_versions, threshold=args.threshold,
                           min_gap=args.min_gap, skipped=skipped)
    print(fleet_render.fleet_table(report))
    if not _write_outputs("fleet", report, ((args.json, fleet_render.write_json),
                                            (args.png, fleet_render.write_heat_map))):
        return EXIT_USAGE
    if not report.comparable:
        print("pytest-ascend fleet: no group of 3 or more boxes to compare", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_REGRESSION if report.flags else EXIT_OK


def run_nightly(args: argparse.Namespace) -> int:
    from pytest_ascend.history import nightly
    from pytest_ascend.history import render as report
    from pytest_ascend.history.dashboard import write_dashboard
    from pytest_ascend.history.nightly_outcome import MEANINGS, night_exit_code

    def say(message: str) -> None:
        print(f"pytest-ascend nightly: {message}", file=sys.stderr, flush=True)

    pytest_args = list(args.pytest_args)
    if pytest_args[:1] == ["--"]:
        pytest_args = pytest_args[1:]
    args.storage.mkdir(parents=True, exist_ok=True)
    folder = nightly.night_folder(args.out)
    say(f"tonight's reports: {folder}")
    suite_exit, stopped = nightly.run_suite(
        nightly.suite_argv(pytest_args, args.storage, folder), say)
    regressions, comparable = 0, False
    try:
        runs, _ = load_runs(f"file://{args.storage.resolve()}")
        runs, set_aside = set_aside_throttled(runs)
        history = hist.build_history(runs, group_by=args.group_by,
                                     min_change=args.min_change,
                                     noise_factor=args.noise_factor)
    except HistoryError as exc:
        say(f"no history to gate: {exc}")
    else:
        comparable = nightly.newest_is_comparable(history)
        regressions = (len(history.regressions) if args.gate != "steps" else 0) + \
            (len(history.step_regressions) if args.gate != "groups" else 0)
        print(report.render_table(history, set_aside))
        for name, write in (("history.md", lambda h, p: p.write_text(
                                report.render_markdown(h, set_aside))),
                            ("history.json", lambda h, p: p.write_text(
                                report.render_json(h, set_aside))),
                            ("history.html", report.write_html),
                            ("history.png", report.write_plot),
                            ("dashboard", lambda h, p: write_dashboard(h, p, set_aside))):
            try:
                write(history, folder / name)
            except (OSError, ValueError) as exc:
                say(f"{name} not written: {exc}")
    code = night_exit_code(suite_exit, stopped, regressions, comparable)
    say(f"exit {code}: {MEANINGS[code]} (the suite exited "
        f"{suite_exit}; {regressions} regression(s) by --gate {args.gate})")
    return code


def run_plan(args: argparse.Namespace) -> int:
    from pytest_ascend.box.placement import CardMemory, model_config, plan_placement

    try:
        count, capacity = parse_box(args.box)
        config = model_config(args.model)
    except ValueError as exc:
        print(f"pytest-ascend plan: {exc}", file=sys.stderr)
        return EXIT_USAGE
    cards = [CardMemory(index, capacity, capacity) for index in range(count)]
    placement = plan_placement(cards, config, args.dtype, sglang=args.sglang,
                               torchrun=count >= 2)
    print(json.dumps(placement.to_json(), indent=2) if args.json else placement.table())
    return EXIT_OK


def run_history(args: argparse.Namespace) -> int:
    from pytest_ascend.history import render as report

    storage = args.storage
    if storage is None and not args.json:
        storage = ".benchmarks"
    if args.diff_profiles:
        return run_profile_diff(args.diff_profiles, storage, args.format)
    try:
        runs, skipped = load_runs(storage, args.json)
        for item in skipped:
            print(f"pytest-ascend history: skipped {item.source}: {item.reason}",
                  file=sys.stderr)
        runs, set_aside = set_aside_throttled(runs)
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
    print(render(history, set_aside))
    from pytest_ascend.history.dashboard import write_dashboard

    if not _write_outputs("history", history, (
            (args.plot, report.write_plot),
            (args.html, lambda h, p: write_dashboard(h, p, set_aside)))):
        return EXIT_USAGE
    regressed = (args.gate != "steps" and history.regressions) or \
        (args.gate != "groups" and history.step_regressions)
    return EXIT_REGRESSION if args.fail_on_regression and regressed else EXIT_OK


def run_profile_diff(runs: Sequence[str], storage: Optional[str], fmt: str) -> int:
    from pytest_ascend.profiling.diff import (
        ProfileDiffError,
        diff_json,
        diff_runs,
        find_run,
        render_diff,
    )

    folder = None if storage is None else Path(storage.removeprefix("file://"))
    try:
        before, after = (find_run(spec, folder) for spec in runs)
        diffs = diff_runs(before, after)
    except ProfileDiffError as exc:
        print(f"pytest-ascend history --diff-profiles: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(diff_json(diffs, before, after) if fmt == "json" else render_diff(diffs, before, after))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
