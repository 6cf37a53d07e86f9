"""Per-question answers kept next to the token goldens, one file per eval set and stack:

    GOLDEN_DIR/accuracy/<set name>-<first 12 of its sha256>/<stack>.json

`<stack>` names what made the answers: the device, its chip, CANN, torch, torch_npu,
transformers and the dtype, so a box records once per CANN version and the records sit side
by side. A record is written once (atomically) and never overwritten: a second recording of
the same stack is refused, naming the file to delete. A record of another file (another
sha256) is never paired with this one: it lives in another folder.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from pytest_ascend.accuracy.evalset import EvalSet
from pytest_ascend.accuracy.paired import QuestionResult

FORMAT, VERSION = "pytest-ascend-accuracy", 1
STACK_KEYS = ("device_kind", "npu_chip", "device_name", "cann", "torch", "torch_npu", "cuda",
              "transformers")


class RecordError(ValueError):
    """A record that cannot be written or used; one line naming the file."""


def stack_key(environment: Mapping[str, Any], dtype: str) -> str:
    """A file name for the stack an environment block describes."""
    chip = environment.get("npu_chip") or environment.get("device_name")
    parts = [environment.get("device_kind"), chip, *(
        f"{name}-{environment[name]}" for name in ("cann", "torch", "torch_npu", "cuda",
                                                   "transformers") if environment.get(name)),
        dtype]
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", "_".join(str(p) for p in parts if p))


def records_dir(golden_dir: Path, evalset: EvalSet) -> Path:
    return Path(golden_dir) / "accuracy" / f"{evalset.name}-{evalset.sha256[:12]}"


def write_record(golden_dir: Path, evalset: EvalSet, stack: str,
                 results: Sequence[QuestionResult], *, environment: Mapping[str, Any],
                 model: Mapping[str, Any]) -> Path:
    """Write the record of `stack`; refuse to replace one."""
    folder = records_dir(golden_dir, evalset)
    path = folder / f"{stack}.json"
    if path.exists():
        raise RecordError(f"{path} already holds this stack's answers; delete it to record "
                          f"them again")
    folder.mkdir(parents=True, exist_ok=True)
    correct = sum(r.correct for r in results)
    document = {
        "format": FORMAT, "version": VERSION, "stack": stack,
        "recorded": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "eval": evalset.provenance(), "model": dict(model),
        "environment": {k: v for k, v in environment.items() if k != "env_vars"},
        "correct": correct, "questions": len(results),
        "results": [asdict(r) for r in results],
    }
    handle, temporary = tempfile.mkstemp(dir=folder, suffix=".tmp")
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        json.dump(document, out, ensure_ascii=False, indent=1)
    try:
        os.link(temporary, path)  # fails if another session recorded meanwhile: no overwrite
    except FileExistsError:
        raise RecordError(f"{path} was recorded meanwhile by another session") from None
    finally:
        os.unlink(temporary)
    return path


def read_record(path: Path) -> dict:
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RecordError(f"{path}: not a readable accuracy record ({exc})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT or \
            not isinstance(document.get("results"), list):
        raise RecordError(f"{path}: not a {FORMAT} record")
    return document


def record_results(document: Mapping[str, Any]) -> dict[str, QuestionResult]:
    return {r["id"]: QuestionResult(r["id"], r["response"], r["answer"], bool(r["correct"]))
            for r in document["results"]}


def choose_baseline(golden_dir: Path, evalset: EvalSet, baseline: Optional[str]) -> Path:
    """The record to compare with: the stack `baseline` names, else the only one, else the
    newest recorded. Raises RecordError saying what there is."""
    folder = records_dir(golden_dir, evalset)
    found = sorted(folder.glob("*.json")) if folder.is_dir() else []
    if not found:
        raise RecordError(f"{folder} holds no record of {evalset.name} (sha256 "
                          f"{evalset.sha256[:12]}): record one with --ascend-eval and "
                          f"--ascend-golden-record={golden_dir}")
    if baseline is not None:
        match = [path for path in found if path.stem == baseline]
        if not match:
            raise RecordError(f"--ascend-eval-baseline {baseline}: no such record in {folder}; "
                              f"there are: {', '.join(p.stem for p in found)}")
        return match[0]
    return max(found, key=lambda path: str(read_record(path).get("recorded", "")))
