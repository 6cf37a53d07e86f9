"""Single-request latency on the seed's four workloads: the numbers the seed reported as
"10-12 tok/s", now split into prefill (TTFT) and decode (TPOT) and timed on the device."""

import pytest

from pytest_ascend.model.prompts import SEED_WORKLOADS

pytestmark = pytest.mark.npu


@pytest.mark.parametrize("workload", SEED_WORKLOADS, ids=lambda w: w.name)
def test_single_request_latency(benchmark_generation, tokenizer, workload):
    result, metrics, _ = benchmark_generation(
        workload.chat_prompts(tokenizer), max_new_tokens=workload.max_new_tokens
    )

    measured = [len(tokenizer(p)["input_ids"]) for p in workload.chat_prompts(tokenizer)]
    expected = [measured[run.prompt_indices[0]] for run in result.runs]
    assert metrics["prompt_tokens"] == pytest.approx(sum(expected) / len(expected))
    assert metrics["output_tokens"] == workload.max_new_tokens
