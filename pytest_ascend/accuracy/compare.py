"""A run's answers recorded (--ascend-golden-record) and compared (--ascend-golden): what the
suite's accuracy tests call once they have asked every question."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from pytest_ascend.accuracy.evalset import EvalSet
from pytest_ascend.accuracy.paired import (PairedVerdict, QuestionResult, changed_lines,
                                           judge_paired, results_by_id, wilson_interval)
from pytest_ascend.accuracy.records import (choose_baseline, read_record, record_results,
                                            write_record)


@dataclass
class AccuracyOutcome:
    correct: int
    questions: int
    lines: list = field(default_factory=list)  # for the terminal
    failures: list = field(default_factory=list)
    changed: list = field(default_factory=list)  # every changed question, for the report
    recorded: Optional[Path] = None
    baseline: Optional[Path] = None
    verdict: Optional[PairedVerdict] = None

    @property
    def accuracy(self) -> float:
        return self.correct / self.questions if self.questions else 0.0

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.correct, self.questions)

    def metrics(self, evalset: EvalSet) -> dict:
        """A test's benchmark extra_info: the figures the history shows, and the set asked."""
        return {"accuracy": self.accuracy, "accuracy_interval": list(self.interval),
                "correct": self.correct, "questions": self.questions,
                "eval": evalset.provenance(), "changed": len(self.changed)}


def record_and_compare(evalset: EvalSet, results: Sequence[QuestionResult], *, stack: str,
                       environment: Mapping[str, Any], model: Mapping[str, Any],
                       record_dir: Optional[Path] = None, golden_dir: Optional[Path] = None,
                       baseline: Optional[str] = None, alpha: float = 0.01,
                       floor: Optional[float] = None, shown: int = 10) -> AccuracyOutcome:
    """Record `results` under `stack` in `record_dir`, compare them with a record in
    `golden_dir`; either may be None. Raises records.RecordError for a record that cannot be
    written or read."""
    outcome = AccuracyOutcome(sum(r.correct for r in results), len(results))
    low, high = outcome.interval
    outcome.lines.append(f"accuracy {outcome.accuracy:.3f} [{low:.3f}, {high:.3f}] on "
                         f"{outcome.questions} questions of {evalset.name} ({stack})")
    if floor is not None and golden_dir is None and outcome.accuracy < floor:
        outcome.failures.append(f"accuracy {outcome.accuracy:.3f} is below the floor "
                                f"{floor:g} (--ascend-eval-floor)")
    if record_dir is not None:
        outcome.recorded = write_record(record_dir, evalset, stack, results,
                                        environment=environment, model=model)
        outcome.lines.append(f"recorded every answer in {outcome.recorded}")
    if golden_dir is None:
        return outcome
    outcome.baseline = choose_baseline(golden_dir, evalset, baseline)
    document = read_record(outcome.baseline)
    then, now = record_results(document), results_by_id(results)
    verdict = judge_paired(then, now, alpha=alpha, floor=floor)
    outcome.verdict = verdict
    outcome.lines.append(f"against {outcome.baseline.stem} (recorded "
                         f"{document.get('recorded', '?')}): {verdict.summary()}")
    theirs = (document.get("model") or {}).get("name")
    if theirs and theirs != model.get("name"):
        outcome.lines.append(f"note: the record was made with model {theirs}, this run uses "
                             f"{model.get('name')}: the comparison is of the two models")
    if verdict.only_then:
        outcome.lines.append(f"{len(verdict.only_then)} recorded questions were not asked "
                             f"this time (--ascend-eval-limit?): not paired")
    outcome.lines += changed_lines(verdict, then, now, shown)
    outcome.changed = [{"id": qid, "then": asdict(then[qid]), "now": asdict(now[qid]),
                        "way": "lost" if qid in verdict.lost else
                        "gained" if qid in verdict.gained else "changed"}
                       for qid in verdict.changed]
    outcome.failures += verdict.failures
    return outcome
