"""Extracting and scoring answers, as lm-evaluation-harness's own tasks do (lm-eval 0.4.13,
`lm_eval/tasks/gsm8k/gsm8k.yaml` and `lm_eval/tasks/mmlu/default/_default_template_yaml`),
so that a figure here means what the same figure means there.

GSM8K is generated text. Two extractions are recorded, as lm-eval reports two:
- strict: the number after `#### ` (the answer format the few-shot examples teach);
- flexible: the last number anywhere in the response (lm-eval's `flexible-extract`).
Both sides are then normalised as its exact_match does (commas, `$`, a trailing full stop,
anything up to `#### ` ignored; case ignored). The pairing and the gate use the flexible
one: a model that answers right without the `####` convention is right.

Multiple choice is scored by likelihood, not by parsing text: the choice letter whose
continuation (` A`, ` B`, ...) the model finds most likely after `Answer:` is its answer.
"""

from __future__ import annotations

import re
from typing import Optional

STRICT = re.compile(r"#### (\-?[0-9\.\,]+)")
FLEXIBLE = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")
_IGNORED = (re.compile(","), re.compile(r"\$"), re.compile(r"(?s).*#### "), re.compile(r"\.$"))
UNTIL = ("Question:", "</s>", "<|im_end|>")  # where a GSM8K answer ends
SCORER = "pytest-ascend scoring 1: lm-eval 0.4.13 gsm8k (strict-match, flexible-extract) " \
         "and mmlu (likelihood of the choice letter)"


def normalise(text: str) -> str:
    """lm-eval's exact_match normalisation for gsm8k."""
    for pattern in _IGNORED:
        text = pattern.sub("", text)
    return text.strip().lower()


def cut_at_stop(response: str, until: tuple[str, ...] = UNTIL) -> str:
    """The response up to the first stop string, as `generate_until` ends it."""
    for stop in until:
        at = response.find(stop)
        if at >= 0:
            response = response[:at]
    return response


def extract_strict(response: str) -> Optional[str]:
    match = STRICT.search(response)
    return match.group(1) if match else None


def extract_flexible(response: str) -> Optional[str]:
    """The last match, of whichever alternative matched (lm-eval's group_select -1)."""
    found = FLEXIBLE.findall(response)
    if not found:
        return None
    return next(part for part in found[-1] if part)


def gold_number(answer: str) -> str:
    """A GSM8K answer's final number: what follows `#### `."""
    return normalise(answer)


def number_correct(extracted: Optional[str], gold: str) -> bool:
    return extracted is not None and normalise(extracted) == normalise(gold)
