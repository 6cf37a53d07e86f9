"""The accuracy gate's pure parts on synthetic pairs: the exact McNemar test and the Wilson
interval against independent computations, the paired verdict (no change, a significant drop,
an insignificant one, all ties, a floor), and the eval set's reading, scoring and records.
Fast; the mutation run judges accuracy/paired.py by these."""

import itertools
import json
import math
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_ascend.accuracy.evalset import (CHOICE, GSM8K, EvalSetError, load_eval_set,
                                            resolve_eval_path)
from pytest_ascend.accuracy.generate import arithmetic_lines
from pytest_ascend.accuracy.paired import (QuestionResult, binomial_upper_tail, changed_lines,
                                           judge_paired, mcnemar_drop_p, mcnemar_two_sided_p,
                                           results_by_id, wilson_interval)
from pytest_ascend.accuracy.records import (RecordError, choose_baseline, read_record,
                                            record_results, stack_key, write_record)
from pytest_ascend.accuracy.scoring import (cut_at_stop, extract_flexible, extract_strict,
                                            gold_number, normalise, number_correct)


# The exact test and the interval ----------------------------------------------------------

def brute_force_tail(k, n):
    """P(X >= k), X ~ Bin(n, 1/2), by counting every outcome."""
    hits = sum(1 for outcome in itertools.product((0, 1), repeat=n) if sum(outcome) >= k)
    return Fraction(hits, 2 ** n)


@pytest.mark.parametrize("n", range(0, 11))
def test_binomial_tail_counts_every_outcome(n):
    for k in range(-1, n + 2):
        assert binomial_upper_tail(k, n) == pytest.approx(float(brute_force_tail(k, n)),
                                                          abs=1e-15)


def test_mcnemar_known_values():
    assert mcnemar_drop_p(10, 0) == 2 ** -10
    assert mcnemar_two_sided_p(10, 0) == 2 ** -9
    assert mcnemar_two_sided_p(0, 10) == 2 ** -9
    assert mcnemar_drop_p(0, 10) == 1.0
    assert mcnemar_drop_p(0, 0) == 1.0 and mcnemar_two_sided_p(0, 0) == 1.0
    assert mcnemar_drop_p(5, 5) == pytest.approx(638 / 1024)
    assert mcnemar_two_sided_p(5, 5) == 1.0
    assert mcnemar_two_sided_p(7, 3) == pytest.approx(2 * 176 / 1024)
    assert mcnemar_drop_p(600, 400) < 1e-9  # large counts stay exact and finite


def wilson_by_bisection(correct, total, z=1.959963984540054):
    """The Wilson interval from its definition: the p whose score test |p^ - p| <=
    z sqrt(p(1-p)/n) accepts, found by bisection on each side of p^."""
    p_hat = correct / total

    def accepted(p):
        return abs(p_hat - p) <= z * math.sqrt(p * (1 - p) / total)

    def edge(inside, outside):
        for _ in range(200):
            middle = (inside + outside) / 2
            inside, outside = (middle, outside) if accepted(middle) else (inside, middle)
        return inside

    return edge(p_hat, 0.0), edge(p_hat, 1.0)


@pytest.mark.parametrize("correct, total", [(81, 100), (0, 16), (16, 16), (1, 3), (250, 300),
                                            (7, 1000), (1, 1), (0, 1)])
def test_wilson_interval_against_its_definition(correct, total):
    low, high = wilson_interval(correct, total)
    exact_low, exact_high = wilson_by_bisection(correct, total)
    assert low == pytest.approx(exact_low, abs=1e-9)
    assert high == pytest.approx(exact_high, abs=1e-9)
    assert 0 <= low <= correct / total <= high <= 1


def test_wilson_of_nothing_is_everything():
    assert wilson_interval(0, 0) == (0.0, 1.0)


# The paired verdict -----------------------------------------------------------------------

def results(correct, responses=None):
    responses = responses or [f"r{i}" for i in range(len(correct))]
    return {f"q{i}": QuestionResult(f"q{i}", response, response, ok)
            for i, (ok, response) in enumerate(zip(correct, responses))}


def test_no_change_passes_with_nothing_changed():
    then = results([True, False, True, True])
    verdict = judge_paired(then, dict(then))
    assert not verdict.failed and verdict.changed == [] and verdict.paired == 4
    assert verdict.accuracy_then == verdict.accuracy_now == 0.75
    assert verdict.p_drop == 1.0 and verdict.correct_then == verdict.correct_now == 3


def test_a_significant_drop_fails_and_names_the_lost_questions():
    then = results([True] * 12 + [False] * 8)
    now = results([False] * 10 + [True] * 2 + [False] * 7 + [True])
    verdict = judge_paired(then, now, alpha=0.01)
    assert verdict.lost == [f"q{i}" for i in range(10)] and verdict.gained == ["q19"]
    assert verdict.p_drop == pytest.approx(12 / 2048)
    assert verdict.failures == [
        "accuracy dropped from 0.600 to 0.150: 10 questions lost against 1 gained, exact "
        "McNemar p = 0.00586 < 0.01"]


def test_an_insignificant_drop_passes_and_is_still_listed():
    then = results([True] * 5 + [False] * 5)
    now = results([False] * 3 + [True] * 2 + [True] + [False] * 4)
    verdict = judge_paired(then, now, alpha=0.01)
    assert verdict.lost == ["q0", "q1", "q2"] and verdict.gained == ["q5"]
    assert verdict.p_drop == pytest.approx(5 / 16) and not verdict.failed
    lines = changed_lines(verdict, then, now, shown=2)
    assert lines == ["lost q0: r0 (right) -> r0 (wrong)", "lost q1: r1 (right) -> r1 (wrong)",
                     "... and 2 more (all of them in the report)"]


def test_every_kind_of_change_is_listed_with_both_answers():
    then = {"a": QuestionResult("a", "x", None, True), "b": QuestionResult("b", "y", "3", False),
            "c": QuestionResult("c", "z", "4", False)}
    now = {"a": QuestionResult("a", "x2", "5", False), "b": QuestionResult("b", "y2", "7", True),
           "c": QuestionResult("c", "z2", None, False)}
    verdict = judge_paired(then, now, alpha=0.5, floor=0.1)
    assert verdict.p_two_sided == 1.0 and verdict.floor == 0.1 and verdict.alpha == 0.5
    assert changed_lines(verdict, then, now, shown=3) == [
        "lost a: (none) (right) -> 5 (wrong)", "gained b: 3 (wrong) -> 7 (right)",
        "changed c: 4 (wrong) -> (none) (wrong)"]
    assert changed_lines(verdict, then, now, shown=2)[-1] == \
        "... and 1 more (all of them in the report)"


def test_as_many_lost_as_gained_never_fails_whatever_the_level():
    then = results([True, False])
    now = results([False, True])
    verdict = judge_paired(then, now, alpha=0.9)  # p(drop) = 0.75 < 0.9, and yet no drop
    assert verdict.p_drop == 0.75 and verdict.p_two_sided == 1.0 and not verdict.failed
    assert judge_paired(results([True] * 3 + [False]), results([False] * 3 + [True]),
                        alpha=0.9).p_two_sided == 0.625


def test_the_level_decides():
    then = results([True] * 6)
    now = results([False] * 6)
    assert judge_paired(then, now, alpha=0.02).failed  # p = 1/64 = 0.0156
    assert not judge_paired(then, now, alpha=0.015).failed
    assert judge_paired(results([True] * 7), results([False] * 7), alpha=2 ** -7 + 1e-12).failed
    assert not judge_paired(results([True] * 7), results([False] * 7), alpha=2 ** -7).failed


def test_a_significant_gain_never_fails():
    verdict = judge_paired(results([False] * 12), results([True] * 12), alpha=0.05)
    assert verdict.gained == [f"q{i}" for i in range(12)] and not verdict.failed


def test_all_ties_changed_answers_are_counted_without_failing():
    then = results([False] * 4 + [True] * 2, ["a", "b", "c", "d", "e", "f"])
    now = results([False] * 4 + [True] * 2, ["a", "x", "y", "d", "e", "z"])
    verdict = judge_paired(then, now)
    assert verdict.changed_same == ["q1", "q2", "q5"] and verdict.lost == verdict.gained == []
    assert not verdict.failed
    assert changed_lines(verdict, then, now, shown=5)[0] == "changed q1: b (wrong) -> x (wrong)"
    assert "3 other answers changed" in verdict.summary()


def test_the_floor_fails_on_its_own():
    then = results([True, True, False, False])
    verdict = judge_paired(then, dict(then), floor=0.6)
    assert verdict.failures == ["accuracy 0.500 is below the floor 0.6 (--ascend-eval-floor)"]
    assert not judge_paired(then, dict(then), floor=0.5).failed


def test_unpaired_questions_are_named_and_nothing_paired_fails():
    then, now = results([True, True]), results([True, False, True])
    verdict = judge_paired({"q0": then["q0"], "q9": then["q1"]}, now)
    assert verdict.only_then == ["q9"] and verdict.only_now == ["q1", "q2"]
    assert verdict.paired == 1
    empty = judge_paired({"x": then["q0"]}, now)
    assert empty.failures == ["no question of this run is in the record: nothing to pair"]
    assert math.isnan(empty.accuracy_now)


def test_summary_says_both_accuracies_with_intervals():
    verdict = judge_paired(results([True] * 8 + [False] * 2), results([True] * 8 + [False] * 2))
    assert verdict.summary().startswith(
        "accuracy 0.800 [0.490, 0.943] then, 0.800 [0.490, 0.943] now, over 10 paired "
        "questions; 0 lost, 0 gained, 0 other answers changed; exact McNemar p(drop) = 1")


@given(st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=40))
def test_the_counts_add_up(pairs):
    then = results([a for a, _ in pairs])
    now = results([b for _, b in pairs])
    verdict = judge_paired(then, now)
    assert verdict.correct_now - verdict.correct_then == len(verdict.gained) - len(verdict.lost)
    assert verdict.failed == (verdict.p_drop < 0.01 and len(verdict.lost) > len(verdict.gained))
    assert results_by_id(list(now.values())) == now


# Scoring, as lm-eval's gsm8k and mmlu tasks score -----------------------------------------

@pytest.mark.parametrize("response, strict, flexible", [
    ("She has 5 + 3 = 8 apples.\n#### 8", "8", "8"),
    ("The answer is $1,250.", None, "$1,250."),
    ("#### -3\n\nQuestion: next", "-3", "-3"),
    ("no number here", None, None),
    ("first 12 then 7", None, "7"),
])
def test_extraction(response, strict, flexible):
    assert extract_strict(response) == strict
    assert extract_flexible(response) == flexible


@pytest.mark.parametrize("extracted, gold, right", [
    ("$1,250.", "1250", True), ("8", "8", True), ("8.", "8", True), ("80", "8", False),
    (None, "8", False), ("-3", "-3", True)])
def test_number_correct_normalises_both_sides(extracted, gold, right):
    assert number_correct(extracted, gold) is right


def test_gold_and_stops():
    assert gold_number("Work: 5 + 3 = 8.\n#### 1,008") == "1008"
    assert normalise("$12.") == "12"
    assert cut_at_stop("42 apples\n\nQuestion: more<|im_end|>") == "42 apples\n\n"
    assert cut_at_stop("a</s>b<|im_end|>c") == "a"


# Eval sets --------------------------------------------------------------------------------

def write_lines(path, lines):
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def test_gsm8k_and_choice_formats_and_prompts(tmp_path):
    gsm = load_eval_set(str(write_lines(tmp_path / "g.jsonl", [
        {"question": "Q one?", "answer": "1 + 1 = 2\n#### 2", "fewshot": True},
        {"question": "Q two?", "answer": "#### 3", "id": "two"}])))
    assert gsm.kind == GSM8K and [q.id for q in gsm.questions] == ["two"]
    assert gsm.prompt(gsm.questions[0]) == ("Question: Q one?\nAnswer: 1 + 1 = 2\n#### 2\n\n"
                                            "Question: Q two?\nAnswer:")
    mc = load_eval_set(str(write_lines(tmp_path / "c.jsonl", [
        {"question": " Pick ", "choices": ["x", "y", "z"], "answer": "b"},
        {"question": "C-Eval", "A": "1", "B": "2", "C": "3", "D": "4", "answer": "D"},
        {"question": "MMLU", "choices": ["p", "q"], "answer": 0}])))
    assert mc.kind == CHOICE and [q.gold for q in mc.questions] == ["B", "D", "A"]
    assert mc.prompt(mc.questions[0]) == "Pick\nA. x\nB. y\nC. z\nAnswer:"
    assert mc.questions[1].letters == ("A", "B", "C", "D")
    assert len({q.id for q in mc.questions}) == 3
    assert mc.provenance()["sha256"] == mc.sha256 and mc.provenance()["fewshot"] == 0


@pytest.mark.parametrize("lines, message", [
    (["not json"], r"g\.jsonl:1: not JSON"),
    ([{"question": "q", "answer": "no hashes"}], r":1: a GSM8K answer is a string ending in"),
    ([{"question": "q", "answer": "#### "}], r":1: nothing follows \"####\""),
    ([{"question": "q", "choices": ["a", "b"], "answer": "C"}], r"'C' is not one of A, B"),
    ([{"question": "q", "choices": ["a"], "answer": "A"}], r"list of 2 to 10 strings"),
    ([{"answer": "#### 1"}], r"an object with a \"question\" string"),
    ([{"question": "q", "answer": "#### 1", "id": 1}, {"question": "r", "answer": "#### 1",
                                                       "id": 1}],
     r":2: question id '1' is also on line 1"),
    ([{"question": "q", "answer": "#### 1"}, {"question": "r", "choices": ["a", "b"],
                                              "answer": "A"}], r"mixes GSM8K lines"),
    ([{"question": "q", "answer": "#### 1", "fewshot": True}], r"no questions"),
])
def test_bad_eval_sets_are_one_line_naming_the_place(tmp_path, lines, message):
    path = tmp_path / "g.jsonl"
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n"
                            for line in lines))
    with pytest.raises(EvalSetError, match=message):
        load_eval_set(str(path))


def test_a_missing_file_says_what_to_give(tmp_path):
    with pytest.raises(EvalSetError, match=r"cannot read it .*`arithmetic` for the shipped"):
        load_eval_set(str(tmp_path / "nope.jsonl"))


def test_the_shipped_set_is_the_generators_and_every_answer_is_right():
    shipped = resolve_eval_path("arithmetic").read_text().splitlines()
    assert shipped == [json.dumps(line, ensure_ascii=False) for line in arithmetic_lines()]
    evalset = load_eval_set("arithmetic")
    assert len(evalset.questions) == 300 and len(evalset.fewshot) == 3
    for question in evalset.questions + evalset.fewshot:
        steps = [step.split("=") for step in question.worked.split("\n")[0].split(", ")
                 if "=" in step]
        assert steps, question.worked
        for left, right in steps:  # every step's arithmetic, recomputed here
            expression = left.split(" has ")[-1].split("cost ")[-1].split("hold ")[-1]
            expression = expression.replace("then", "").replace("and", "").strip(" ,")
            value = right.strip().split(" ")[0].rstrip(".")
            assert eval(expression) == float(value), (question.id, left, right)  # noqa: S307
        assert question.gold == right.strip().split(" ")[0].rstrip(".")


def test_the_generator_makes_multiple_choice_with_the_answer_among_them():
    lines = list(arithmetic_lines(count=30, seed=5, choices=True))
    assert len(lines) == 33 and [line.get("fewshot") for line in lines[:4]] == [True] * 3 + [None]
    for line in lines:
        assert len(set(line["choices"])) == 4 and line["answer"] in "ABCD"


# Records ----------------------------------------------------------------------------------

ENVIRONMENT = {"device_kind": "npu", "npu_chip": "910B3", "device_name": "Ascend910B3",
               "cann": "8.0.RC3", "torch": "2.1.0", "torch_npu": "2.1.0.post8",
               "transformers": "4.45.0", "env_vars": {"HCCL_DETERMINISTIC": "true"}}


def test_stack_key_names_the_stack():
    assert stack_key(ENVIRONMENT, "float16") == \
        "npu_910B3_cann-8.0.RC3_torch-2.1.0_torch_npu-2.1.0.post8_transformers-4.45.0_float16"
    assert stack_key({"device_kind": "cpu", "device_name": "AMD EPYC 7B13", "torch": "2.13.0+cpu"},
                     "float32") == "cpu_AMD_EPYC_7B13_torch-2.13.0+cpu_float32"


def test_records_are_written_once_and_the_baseline_is_chosen(tmp_path):
    evalset = load_eval_set(str(write_lines(tmp_path / "g.jsonl", [
        {"question": "a", "answer": "#### 1", "id": "a"}])))
    answers = [QuestionResult("a", "1", "1", True)]
    first = write_record(tmp_path / "gold", evalset, "stack-one", answers,
                         environment=ENVIRONMENT, model={"name": "m"})
    assert record_results(read_record(first)) == {"a": answers[0]}
    assert "env_vars" not in read_record(first)["environment"]
    with pytest.raises(RecordError, match="already holds this stack's answers; delete it"):
        write_record(tmp_path / "gold", evalset, "stack-one", answers, environment={},
                     model={})
    second = write_record(tmp_path / "gold", evalset, "stack-two", answers, environment={},
                          model={})
    assert choose_baseline(tmp_path / "gold", evalset, None) == second  # the newest
    assert choose_baseline(tmp_path / "gold", evalset, "stack-one") == first
    with pytest.raises(RecordError, match="no such record .* there are: stack-one, stack-two"):
        choose_baseline(tmp_path / "gold", evalset, "stack-three")
    with pytest.raises(RecordError, match="holds no record of g"):
        choose_baseline(tmp_path / "elsewhere", evalset, None)
    (first.parent / "broken.json").write_text("{")
    with pytest.raises(RecordError, match="not a readable accuracy record"):
        read_record(first.parent / "broken.json")
