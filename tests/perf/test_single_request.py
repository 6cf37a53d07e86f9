"""Single-request latency on the seed's four workloads: the numbers the seed reported as
"10-12 tok/s", now split into prefill (TTFT) and decode (TPOT) and timed on the device."""

import statistics

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

    # The reported figures are the medians of what each timed request measured (TPOT: its
    # decode time over the tokens after the first), not figures of their own.
    runs = result.runs
    assert all(run.batch_size == 1 for run in runs)
    assert metrics["ttft_ms"] == pytest.approx(statistics.median(r.ttft_ms for r in runs))
    assert metrics["e2e_ms"] == pytest.approx(statistics.median(r.e2e_ms for r in runs))
    tpots = [r.decode_ms / (r.output_tokens - 1) for r in runs]
    assert metrics["tpot_ms"] == pytest.approx(statistics.median(tpots))
    assert 0 < metrics["ttft_ms"] < metrics["e2e_ms"] and metrics["tpot_ms"] > 0
    # A request's E2E brackets its prefill and every decode step: so do the medians.
    slack = 1e-3 * (workload.max_new_tokens + 1)  # event timestamps resolve to ~1 us
    assert metrics["e2e_ms"] >= statistics.median(r.ttft_ms + r.decode_ms for r in runs) - slack
