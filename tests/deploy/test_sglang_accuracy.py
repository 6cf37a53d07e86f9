"""Accuracy on an eval set (--ascend-eval) asked of the SGLang server: the same prompts, stops
and scoring as the model in process (tests/compat/test_accuracy.py), recorded and compared per
question under this stack's name with `-sglang` added (--ascend-golden-record,
--ascend-golden)."""

import pytest

from pytest_ascend.accuracy.answering import ask_server
from pytest_ascend.accuracy.evalset import describe

pytestmark = pytest.mark.sglang


def test_sglang_accuracy(ascend_eval, sglang_server, tokenizer, benchmark, ascend_accuracy,
                         ascend_progress, pytestconfig):
    from pytest_ascend.ascend_session import of

    questions = of(pytestconfig).eval_questions()
    ascend_progress(f"eval on the server: {describe(ascend_eval, len(questions))}")
    results = benchmark.pedantic(ask_server,
                                 args=(sglang_server, tokenizer, ascend_eval, questions),
                                 kwargs={"progress": ascend_progress}, rounds=1, iterations=1)
    assert [r.id for r in results] == [q.id for q in questions], "answers out of order"
    assert all(r.response for r in results), "the server gave an empty answer"
    outcome = ascend_accuracy(results, "sglang")
    benchmark.extra_info.update(outcome.metrics(ascend_eval))
    assert not outcome.failures, "; ".join(outcome.failures)
