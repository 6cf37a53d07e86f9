"""The options of accuracy on an eval set: which set, where its per-question answers are
recorded or compared, and the gate's level."""

from __future__ import annotations

from pytest_ascend import numbers
from pytest_ascend.options import OptionGroup, OptionSpec, path

ACCURACY_OPTIONS = OptionGroup("accuracy on an eval set", (
    OptionSpec(
        "eval",
        "--ascend-eval",
        "ask the questions of this JSONL eval set (GSM8K's format, or multiple choice as "
        "MMLU/C-Eval) of the model (tests/compat/test_accuracy.py) and of the SGLang server "
        "(tests/deploy/test_sglang_accuracy.py); `arithmetic` is the shipped generated set",
        metavar="PATH",
        is_path=True,
    ),
    OptionSpec(
        "eval_limit",
        "--ascend-eval-limit",
        "ask only the first N questions of the eval set (a quick run; a record and its "
        "comparison pair the questions both asked)",
        metavar="N",
        parse=numbers.count,
    ),
    OptionSpec(
        "golden_record",
        "--ascend-golden-record",
        "record each question's answer and whether it was right into DIR/accuracy, next to "
        "the token goldens, under this stack's name (never replacing a record)",
        metavar="DIR",
        is_path=True,
        final=path,
    ),
    OptionSpec(
        "eval_alpha",
        "--ascend-eval-alpha",
        "fail the comparison with --ascend-golden when the accuracy drop is significant at "
        "this level (exact McNemar test on the questions whose correctness changed)",
        default=0.01,
        metavar="LEVEL",
        parse=numbers.fraction,
    ),
    OptionSpec(
        "eval_floor",
        "--ascend-eval-floor",
        "also fail when accuracy falls below this fraction",
        metavar="FRACTION",
        parse=numbers.fraction,
    ),
    OptionSpec(
        "eval_baseline",
        "--ascend-eval-baseline",
        "the recorded stack to compare with (a file name under DIR/accuracy/<set>/, without "
        ".json); by default the only record, else the newest",
        metavar="STACK",
    ),
    OptionSpec(
        "eval_shown",
        "--ascend-eval-shown",
        "changed answers printed (every one goes to the report)",
        default="10",
        metavar="N",
        parse=numbers.count,
    ),
))
