"""An eval set on disk: JSON lines, one question each, in one of two formats.

- GSM8K's: `{"question": ..., "answer": "... #### 72"}`, the answer's worked solution
  ending in `#### N`.
- Multiple choice (MMLU, C-Eval): `{"question": ..., "choices": [...], "answer": "B"}`;
  C-Eval's columns (`"A": ..., "B": ..., ...`) and MMLU's integer answer (1 for B) are
  read too.

A line with `"fewshot": true` is an example for the prompt, not a question; with none, the
prompt is zero-shot. An `"id"` names a question; without one, a hash of its text does, so
the same file pairs question by question however its lines are ordered. The prompts are
lm-eval's (`scoring.py` says which version): GSM8K `Question: ...\nAnswer:`, examples
followed by their worked answers; multiple choice the question, `A. ...` per choice, and
`Answer:`.

No dataset is fetched: the file is read from the path given. `--ascend-eval=arithmetic`
names the shipped generated set (pytest_ascend/data/arithmetic.jsonl, `generate.py`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from pytest_ascend.accuracy.scoring import gold_number

GSM8K, CHOICE = "gsm8k", "choice"
LETTERS = "ABCDEFGHIJ"
BUILTIN = {"arithmetic": "arithmetic.jsonl"}
GSM8K_TEMPLATE = "Question: {question}\nAnswer:"
CHOICE_TEMPLATE = "{question}\n{choices}\nAnswer:"
FEWSHOT_DELIMITER = "\n\n"


class EvalSetError(ValueError):
    """The file cannot be used; the message names the file, the line and what is wrong."""


@dataclass(frozen=True)
class Question:
    id: str
    kind: str  # GSM8K or CHOICE
    question: str
    gold: str  # the final number (normalised), or the choice letter
    choices: tuple[str, ...] = ()
    worked: str = ""  # GSM8K's whole answer, shown after an example's question

    def prompt(self) -> str:
        if self.kind == GSM8K:
            return GSM8K_TEMPLATE.format(question=self.question)
        listed = "\n".join(f"{LETTERS[i]}. {choice}" for i, choice in enumerate(self.choices))
        return CHOICE_TEMPLATE.format(question=self.question.strip(), choices=listed)

    def example(self) -> str:
        """This question as a few-shot example: its prompt and its answer."""
        return f"{self.prompt()} {self.worked if self.kind == GSM8K else self.gold}"

    @property
    def letters(self) -> tuple[str, ...]:
        return tuple(LETTERS[:len(self.choices)])


@dataclass(frozen=True)
class EvalSet:
    name: str
    path: Path
    sha256: str
    kind: str
    questions: tuple[Question, ...]
    fewshot: tuple[Question, ...]

    def prompt(self, question: Question) -> str:
        """The whole prompt for `question`: the file's examples, then the question."""
        return "".join(example.example() + FEWSHOT_DELIMITER for example in self.fewshot) + \
            question.prompt()

    def provenance(self) -> dict[str, Any]:
        """What a record and a report say about the set and how it was asked."""
        from pytest_ascend.accuracy.scoring import SCORER

        return {"name": self.name, "path": str(self.path), "sha256": self.sha256,
                "kind": self.kind, "questions": len(self.questions),
                "fewshot": len(self.fewshot),
                "template": GSM8K_TEMPLATE if self.kind == GSM8K else CHOICE_TEMPLATE,
                "scorer": SCORER}


def resolve_eval_path(spec: str) -> Path:
    """The file a `--ascend-eval` value names: a shipped set's name, or a path."""
    if spec in BUILTIN:
        return Path(__file__).resolve().parents[1] / "data" / BUILTIN[spec]
    return Path(spec).expanduser()


def load_eval_set(spec: str) -> EvalSet:
    """Read and check every line; the first problem found is one EvalSetError line."""
    path = resolve_eval_path(spec)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise EvalSetError(f"--ascend-eval={spec}: cannot read it ({exc.strerror}); give a "
                           f"JSONL file, or `arithmetic` for the shipped set") from None
    questions, fewshot, seen = [], [], {}
    for number, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise EvalSetError(f"{where}: not JSON ({exc.msg})") from None
        question = _question(item, where)
        if question.id in seen:
            raise EvalSetError(f"{where}: question id {question.id!r} is also on line "
                               f"{seen[question.id]}; give each line its own \"id\"")
        seen[question.id] = number
        (fewshot if item.get("fewshot") else questions).append(question)
    kinds = {q.kind for q in questions + fewshot}
    if not questions:
        raise EvalSetError(f"{path}: no questions (every line is empty or a few-shot example)")
    if len(kinds) > 1:
        raise EvalSetError(f"{path}: mixes GSM8K lines and multiple-choice lines; use one "
                           f"format per file")
    return EvalSet(path.stem, path, hashlib.sha256(data).hexdigest(), kinds.pop(),
                   tuple(questions), tuple(fewshot))


def _question(item: Any, where: str) -> Question:
    if not isinstance(item, dict) or not isinstance(item.get("question"), str):
        raise EvalSetError(f"{where}: a line is an object with a \"question\" string")
    text, answer = item["question"], item.get("answer")
    choices = _choices(item, where)
    ident = str(item["id"]) if "id" in item else \
        hashlib.sha256(json.dumps([text, list(choices)]).encode()).hexdigest()[:12]
    if choices:
        return Question(ident, CHOICE, text, _letter(answer, len(choices), where), choices)
    if not isinstance(answer, str) or "####" not in answer:
        raise EvalSetError(f"{where}: a GSM8K answer is a string ending in \"#### N\"; a "
                           f"multiple-choice line needs \"choices\" (or columns A, B, ...)")
    gold = gold_number(answer)
    if not gold:
        raise EvalSetError(f"{where}: nothing follows \"####\" in the answer")
    return Question(ident, GSM8K, text, gold, worked=answer)


def _choices(item: dict, where: str) -> tuple[str, ...]:
    if "choices" in item:
        choices = item["choices"]
    else:
        choices = [item[letter] for letter in LETTERS if letter in item]
    if not choices:
        return ()
    if not isinstance(choices, list) or not 2 <= len(choices) <= len(LETTERS) or \
            not all(isinstance(c, (str, int, float)) for c in choices):
        raise EvalSetError(f"{where}: \"choices\" is a list of 2 to {len(LETTERS)} strings")
    return tuple(str(c) for c in choices)


def _letter(answer: Any, count: int, where: str) -> str:
    letters = LETTERS[:count]
    if isinstance(answer, int) and not isinstance(answer, bool) and 0 <= answer < count:
        return letters[answer]
    if isinstance(answer, str) and answer.strip().upper() in letters and answer.strip():
        return answer.strip().upper()
    raise EvalSetError(f"{where}: the answer {answer!r} is not one of {', '.join(letters)} "
                       f"(or an index 0-{count - 1})")


def describe(evalset: EvalSet, limit: Optional[int] = None) -> str:
    shown = len(evalset.questions) if limit is None else min(limit, len(evalset.questions))
    return (f"{evalset.name} ({evalset.kind}, {shown} of {len(evalset.questions)} questions, "
            f"{len(evalset.fewshot)}-shot, sha256 {evalset.sha256[:12]})")
