"""The paired gate: the same questions asked on two stacks, judged question by question.

A fixed tolerance against an absolute floor ignores that both runs answered the same
questions. What can show a change is the discordant pairs: `lost`, right then and wrong now
(b), and `gained`, wrong then and right now (c). Under "nothing changed", each discordant
question is as likely to go either way, so b ~ Binomial(b + c, 1/2): McNemar's exact test.
The gate fails when the drop is significant, P(X >= b) < alpha (one-sided: a gain never
fails it), and, optionally, when accuracy now is below an absolute floor. Answers that
changed while their correctness did not are counted too: on a weak model, where little is
right either way, they are the drift signal.

Exact binomial tails are computed from integers (math.comb), so they hold for any count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Optional, Sequence

Z_95 = 1.959963984540054  # the 97.5th percentile of the standard normal


@dataclass(frozen=True)
class QuestionResult:
    id: str
    response: str  # what the model said (text), or the choice it found most likely
    answer: Optional[str]  # what was extracted from it
    correct: bool


def binomial_upper_tail(k: int, n: int) -> float:
    """P(X >= k) for X ~ Binomial(n, 1/2), exactly: one minus the outcomes below k (none
    for k <= 0; every one for k > n, since C(n, i) is 0 past n)."""
    return (2 ** n - sum(math.comb(n, i) for i in range(k))) / 2 ** n


def mcnemar_drop_p(lost: int, gained: int) -> float:
    """One-sided exact McNemar p-value for a drop: P(X >= lost), X ~ Bin(lost + gained, 1/2)."""
    return binomial_upper_tail(lost, lost + gained)


def mcnemar_two_sided_p(lost: int, gained: int) -> float:
    return min(1.0, 2 * binomial_upper_tail(max(lost, gained), lost + gained))


def wilson_interval(correct: int, total: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of an accuracy (95% by default); (0, 1) for no questions."""
    if total <= 0:
        return 0.0, 1.0
    p = correct / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass
class PairedVerdict:
    paired: int
    correct_then: int
    correct_now: int
    lost: list  # ids right then, wrong now
    gained: list  # ids wrong then, right now
    changed_same: list  # ids whose answer changed, right or wrong both times
    only_then: list  # ids the baseline has and this run does not
    only_now: list
    p_drop: float
    p_two_sided: float
    alpha: float
    floor: Optional[float]
    failures: list = field(default_factory=list)

    @property
    def accuracy_then(self) -> float:
        return self.correct_then / self.paired if self.paired else math.nan

    @property
    def accuracy_now(self) -> float:
        return self.correct_now / self.paired if self.paired else math.nan

    @property
    def changed(self) -> list:
        """Every question whose answer changed: lost, gained, then the rest."""
        return [*self.lost, *self.gained, *self.changed_same]

    @property
    def failed(self) -> bool:
        return bool(self.failures)

    def summary(self) -> str:
        low_then, high_then = wilson_interval(self.correct_then, self.paired)
        low_now, high_now = wilson_interval(self.correct_now, self.paired)
        return (f"accuracy {self.accuracy_then:.3f} [{low_then:.3f}, {high_then:.3f}] then, "
                f"{self.accuracy_now:.3f} [{low_now:.3f}, {high_now:.3f}] now, over "
                f"{self.paired} paired questions; {len(self.lost)} lost, {len(self.gained)} "
                f"gained, {len(self.changed_same)} other answers changed; exact McNemar "
                f"p(drop) = {self.p_drop:.3g} (alpha {self.alpha:g})")


def judge_paired(then: Mapping[str, QuestionResult], now: Mapping[str, QuestionResult], *,
                 alpha: float = 0.01, floor: Optional[float] = None) -> PairedVerdict:
    """`then` (the record) against `now`, paired by question id."""
    ids = [qid for qid in now if qid in then]
    lost = [qid for qid in ids if then[qid].correct and not now[qid].correct]
    gained = [qid for qid in ids if now[qid].correct and not then[qid].correct]
    changed_same = [qid for qid in ids if then[qid].correct == now[qid].correct
                    and then[qid].response != now[qid].response]
    verdict = PairedVerdict(
        len(ids), sum(then[qid].correct for qid in ids), sum(now[qid].correct for qid in ids),
        lost, gained, changed_same, [qid for qid in then if qid not in now],
        [qid for qid in now if qid not in then], mcnemar_drop_p(len(lost), len(gained)),
        mcnemar_two_sided_p(len(lost), len(gained)), alpha, floor)
    if not ids:
        verdict.failures.append("no question of this run is in the record: nothing to pair")
        return verdict
    if verdict.p_drop < alpha and len(lost) > len(gained):
        verdict.failures.append(
            f"accuracy dropped from {verdict.accuracy_then:.3f} to {verdict.accuracy_now:.3f}: "
            f"{len(lost)} questions lost against {len(gained)} gained, exact McNemar "
            f"p = {verdict.p_drop:.3g} < {alpha:g}")
    if floor is not None and verdict.accuracy_now < floor:
        verdict.failures.append(f"accuracy {verdict.accuracy_now:.3f} is below the floor "
                                f"{floor:g} (--ascend-eval-floor)")
    return verdict


def changed_lines(verdict: PairedVerdict, then: Mapping[str, QuestionResult],
                  now: Mapping[str, QuestionResult], shown: int) -> list[str]:
    """The first `shown` changed questions, one line each: which way, and both answers."""
    lines = []
    for qid in verdict.changed[:shown]:
        way = "lost" if qid in verdict.lost else "gained" if qid in verdict.gained else \
            "changed"
        lines.append(f"{way} {qid}: {_brief(then[qid])} -> {_brief(now[qid])}")
    hidden = len(verdict.changed) - len(lines)
    if hidden > 0:
        lines.append(f"... and {hidden} more (all of them in the report)")
    return lines


def _brief(result: QuestionResult) -> str:
    mark = "right" if result.correct else "wrong"
    return f"{result.answer if result.answer is not None else '(none)'} ({mark})"


def results_by_id(results: Sequence[QuestionResult]) -> dict[str, QuestionResult]:
    return {result.id: result for result in results}
