"""measure_generation: the same tokens as `generate`, timings from the device timer, TPOT that
agrees with an independent bare loop, and summary figures that follow their definitions."""

import math
import time
from contextlib import contextmanager

import pytest
import torch

from pytest_ascend.measure.generation import (
    BatchRun,
    GenerationMeasurer,
    GenerationResult,
    consistency_problems,
    measure_generation,
)
from pytest_ascend.measure.interleave import round_ratios
from pytest_ascend.measure.stats import percentile
from pytest_ascend.model.greedy import greedy_generate
from pytest_ascend.model.hf_compat import forward_kwargs, output_cache
from pytest_ascend.model.prompts import SEED_PROMPTS, chat_prompt
from pytest_ascend.platforms.cpu import CpuDevice
from pytest_ascend.platforms.device import Timing


@pytest.fixture(scope="module")
def prompts(tiny):
    return [chat_prompt(tiny.tokenizer, text) for text in SEED_PROMPTS.values()]


def test_tokens_are_those_of_generate_single_and_padded_batch(tiny, prompts):
    """The timed loop is the model's own decoding path: greedy `generate` picks the same
    tokens, for a single prompt and for a left-padded batch of different lengths."""
    model, tok = tiny.model, tiny.tokenizer
    for batch in ([prompts[0]], prompts[:3]):
        result = measure_generation(model, tok, batch, max_new_tokens=24, device=CpuDevice(),
                                    batch_size=len(batch), repetitions=1)
        expected = greedy_generate(model, tok, batch, 24, ignore_eos=True)
        assert [list(t) for t in result.runs[0].tokens] == [e.tokens for e in expected]


def test_tpot_agrees_with_an_independent_bare_loop(tiny, prompts):
    model, tok = tiny.model, tiny.tokenizer
    ids = tok(prompts[0], return_tensors="pt")["input_ids"]
    steps = 64

    def bare_loop_ms_per_token():
        with torch.inference_mode():
            out = model(input_ids=ids, **forward_kwargs(model))
            nxt = out.logits[:, -1].argmax(-1, keepdim=True)
            start = time.perf_counter()
            for _ in range(steps):
                out = model(input_ids=nxt, **forward_kwargs(model, output_cache(out)))
                nxt = out.logits[:, -1].argmax(-1, keepdim=True)
            return (time.perf_counter() - start) * 1e3 / steps

    bare_loop_ms_per_token()
    bare, suite = [], []
    for _ in range(7):  # interleaved: a round's two figures share that round's load
        bare.append(bare_loop_ms_per_token())
        result = measure_generation(model, tok, prompts[:1], max_new_tokens=steps + 1,
                                    device=CpuDevice(), repetitions=1)
        suite.append(result.summary().tpot_ms.p50)
    ratios = round_ratios(suite, bare)
    # Within 10%, unless the rounds' own spread says the machine was too busy to tell: an
    # interval of per-round ratios wholly outside 0.9-1.1 is a real disagreement.
    assert not ratios.clearly_below(0.90) and not ratios.clearly_above(1.10), ratios.describe()
    assert ratios.median == pytest.approx(1.0, rel=0.25), ratios.describe()


class FixedClockDevice(CpuDevice):
    """A device whose timer says every region took `ms`: shows the figures come from it."""

    def __init__(self, ms):
        super().__init__()
        self.ms = ms

    @contextmanager
    def timer(self):
        timing = Timing()
        yield timing
        timing.elapsed_ms = timing.host_ms = self.ms


def test_every_figure_comes_from_the_device_timer(tiny, prompts):
    result = measure_generation(tiny.model, tiny.tokenizer, prompts[:2], max_new_tokens=5,
                                device=FixedClockDevice(2.0), repetitions=2)
    assert len(result.runs) == 4
    for run in result.runs:
        assert run.ttft_ms == 2.0 and run.e2e_ms == 2.0 and run.itl_ms == (2.0,) * 4


@pytest.mark.parametrize("new_tokens", [2, 3])
def test_tpot_divides_decode_time_by_the_tokens_after_the_first(tiny, prompts, new_tokens):
    """Measured end to end on the fewest tokens where N and N-1 differ most: every region
    takes 2 ms, so TPOT is 2 ms exactly (N-1 decode steps over N-1 tokens); dividing by N
    would give 1 or 1.33 ms."""
    result = measure_generation(tiny.model, tiny.tokenizer, prompts[:1],
                                max_new_tokens=new_tokens, device=FixedClockDevice(2.0),
                                repetitions=1)
    metrics = result.summary().metrics()
    assert metrics["output_tokens"] == new_tokens
    assert metrics["tpot_ms"] == 2.0 and metrics["itl_p50_ms"] == 2.0


def _run(ttft, itl, e2e, batch=1, context=10):
    return BatchRun(batch_index=0, prompt_indices=tuple(range(batch)),
                    prompt_tokens=(context,) * batch, context_tokens=context, ttft_ms=ttft,
                    itl_ms=tuple(itl), e2e_ms=e2e, tokens=((1,) * (len(itl) + 1),) * batch)


def test_summary_follows_the_definitions():
    runs = [_run(10.0, [2.0, 4.0, 6.0], 23.0), _run(12.0, [3.0, 3.0, 3.0], 22.0),
            _run(30.0, [5.0, 5.0, 5.0], 46.0)]
    summary = GenerationResult(runs).summary()

    assert summary.output_tokens == 4
    assert summary.ttft_ms.p50 == 12.0
    assert sorted(r.tpot_ms for r in GenerationResult(runs).requests) == [3.0, 4.0, 5.0]
    assert summary.tpot_ms.p50 == 4.0  # decode time / (output tokens - 1), per request
    assert summary.itl_ms.count == 9 and summary.itl_ms.p50 == 4.0
    assert summary.e2e_ms.p50 == 23.0
    assert summary.output_tokens_per_s == pytest.approx(4 / 0.023)
    metrics = summary.metrics()
    assert metrics["output_tokens_per_s"] == pytest.approx(metrics["output_tokens"]
                                                           / (metrics["e2e_ms"] / 1e3))
    assert metrics["itl_p95_ms"] == pytest.approx(percentile([2, 4, 6, 3, 3, 3, 5, 5, 5], 95))


def test_batch_throughput_counts_every_sequence():
    summary = GenerationResult([_run(5.0, [1.0] * 9, 20.0, batch=4)]).summary()
    assert summary.requests == 4
    assert summary.throughput_tokens_per_s == pytest.approx(4 * 10 / 0.020)


def test_single_token_answers_have_no_tpot_and_report_null():
    metrics = GenerationResult([_run(5.0, [], 5.0)]).summary().metrics()
    assert metrics["tpot_ms"] is None and metrics["output_tokens"] == 1


def test_decay_compares_each_runs_last_steps_with_its_first():
    result = GenerationResult([_run(1.0, [1.0] * 5 + [9.0] * 5, 60.0),
                               _run(1.0, [2.0] * 5 + [3.0] * 5, 30.0)])
    assert result.decay_ratios(5) == [9.0, 1.5]
    with pytest.raises(ValueError, match="at least 12 decode steps"):
        result.decay_ratios(6)


def test_round_figures_are_each_runs_own():
    result = GenerationResult([_run(10.0, [2.0, 4.0, 6.0], 25.0, batch=2),
                               _run(12.0, [3.0, 3.0, 3.0], 20.0, batch=2)])
    rounds = result.round_figures()
    assert rounds["ttft_ms"] == [10.0, 12.0] and rounds["tpot_ms"] == [4.0, 3.0]
    assert rounds["output_tokens_per_s"] == pytest.approx([4 / 0.025, 4 / 0.020])
    assert rounds["throughput_tokens_per_s"] == pytest.approx([8 / 0.025, 8 / 0.020])


def test_pass_throughput_sums_a_pass_before_dividing():
    runs = [_run(1.0, [1.0] * 9, 20.0), _run(1.0, [1.0] * 9, 30.0),
            _run(1.0, [1.0] * 9, 10.0), _run(1.0, [1.0] * 9, 10.0)]
    assert GenerationResult(runs).pass_throughputs(2) == pytest.approx([20 / 0.050, 20 / 0.020])


def test_consistency_problems_name_what_is_wrong():
    good = _run(10.0, [2.0, 2.0], 15.0)
    assert consistency_problems(GenerationResult([good]), 3) == []
    short_e2e = _run(10.0, [2.0, 2.0], 12.0)
    assert "E2E" in consistency_problems(GenerationResult([short_e2e]), 3)[0]
    assert "expected 5" in consistency_problems(GenerationResult([good]), 5)[0]
    assert "non-positive" in consistency_problems(GenerationResult([_run(0.0, [1.0], 5.0)]), 2)[0]


@pytest.mark.parametrize("kwargs, message", [
    (dict(prompts=[]), "at least one prompt"),
    (dict(max_new_tokens=0), "max_new_tokens must be >= 1"),
    (dict(batch_size=0), "batch_size must be >= 1"),
])
def test_bad_arguments_are_one_line_errors(tiny, prompts, kwargs, message):
    args = dict(prompts=prompts[:1], max_new_tokens=4, batch_size=1) | kwargs
    with pytest.raises(ValueError, match=message):
        GenerationMeasurer(tiny.model, tiny.tokenizer, args.pop("prompts"), device=CpuDevice(),
                           **args)


def test_batches_larger_than_the_prompt_list_repeat_prompts(tiny, prompts):
    measurer = GenerationMeasurer(tiny.model, tiny.tokenizer, prompts[:3], max_new_tokens=2,
                                  device=CpuDevice(), batch_size=4)
    run = measurer.run_once()
    assert run.prompt_indices == (0, 1, 2, 0)
    assert not math.isnan(run.e2e_ms)
