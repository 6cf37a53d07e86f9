"""Accuracy on an eval set (--ascend-eval), asked of the model and judged per question: with
--ascend-golden-record every answer is recorded for this stack; with --ascend-golden the
answers are paired with a recorded stack's and the run fails when accuracy dropped
significantly (exact McNemar test), naming the questions whose answer changed.

    pytest -m npu tests/compat/test_accuracy.py --ascend-eval=gsm8k.jsonl \\
        --ascend-golden-record=goldens/qwen14b           # on the trusted stack
    pytest -m npu tests/compat/test_accuracy.py --ascend-eval=gsm8k.jsonl \\
        --ascend-golden=goldens/qwen14b                  # after an upgrade
"""

import pytest

from pytest_ascend.accuracy.answering import ask_model
from pytest_ascend.accuracy.evalset import describe

pytestmark = pytest.mark.npu


def test_accuracy(ascend_eval, model, tokenizer, benchmark, ascend_accuracy, ascend_progress,
                  pytestconfig):
    from pytest_ascend.ascend_session import of

    questions = of(pytestconfig).eval_questions()
    ascend_progress(f"eval: {describe(ascend_eval, len(questions))}")
    results = benchmark.pedantic(ask_model, args=(model, tokenizer, ascend_eval, questions),
                                 kwargs={"progress": ascend_progress}, rounds=1, iterations=1)
    assert len(results) == len(questions), "a question went unanswered"
    outcome = ascend_accuracy(results, "model")
    benchmark.extra_info.update(outcome.metrics(ascend_eval))
    assert not outcome.failures, "; ".join(outcome.failures)
