"""The suite's decode timing adds nothing measurable to what it times: round by round, its
median step time against the plainest synchronized forward loop run just before it."""

import pytest

from pytest_ascend.measure.generation import GenerationMeasurer, bare_decode_ms
from pytest_ascend.measure.interleave import bound_problem, round_ratios
from pytest_ascend.measure.roofline import roofline_metrics, roofline_rounds
from pytest_ascend.measure.stats import median
from pytest_ascend.model.prompts import SEED_PROMPTS, chat_prompt

pytestmark = pytest.mark.npu

STEPS = 128
ROUNDS = 7
MAX_OVERHEAD = 0.03


def test_harness_overhead_within_3_percent(benchmark, device_limits, model, tokenizer,
                                           npu_device, decoder_cost, ascend_progress,
                                           ascend_perf_verdict):
    prompt = chat_prompt(tokenizer, SEED_PROMPTS["qa_ai"])
    measurer = GenerationMeasurer(model, tokenizer, [prompt], max_new_tokens=STEPS + 1,
                                  device=npu_device)
    ids = tokenizer(prompt, return_tensors="pt")["input_ids"].to(model.device)
    bare: list[list[float]] = []
    measurer.warm_up()
    bare_decode_ms(model, ids, STEPS, npu_device)  # its warm-up

    # The bare loop runs as each round's (untimed) setup, so the two alternate and share
    # whatever load the machine has in that round.
    benchmark.pedantic(measurer.run_once, setup=lambda: bare.append(
        bare_decode_ms(model, ids, STEPS, npu_device)), rounds=ROUNDS, iterations=1)

    ratio = round_ratios([median(run.itl_ms) for run in measurer.result.runs],
                         [median(steps) for steps in bare])
    benchmark.extra_info.update(measurer.result.summary().metrics())
    runs = measurer.result.runs
    benchmark.extra_info.update(roofline_metrics(decoder_cost, device_limits, runs))
    benchmark.extra_info.update(
        rounds={**measurer.result.round_figures(),
                **roofline_rounds(decoder_cost, device_limits, runs)},
        harness_overhead=ratio.median - 1,
        **ratio.report("harness_ratio"),
    )
    ascend_progress(f"harness overhead: suite step over bare loop {ratio.describe()}")

    ascend_perf_verdict(bound_problem(
        ratio, "the suite's decode step over a bare synchronized loop on the same model and "
               "prompt", at_most=1 + MAX_OVERHEAD))
