"""A model split across the selected cards (tensor parallel, one torchrun rank per card; two
ranks sharing a host platform): its greedy output equals single-card greedy, and its TPOT is
reported next to the single card's with the roofline fraction of every card.

The job runs once per module (loading a 14B checkpoint onto eight cards takes minutes) and
is timed by the benchmark test; the comparison reads the same job's output."""

import json

import pytest
import torch

from pytest_ascend.box.launch import rank_layout, torchrun_argv
from pytest_ascend.box.tensor_parallel import (
    DEFAULT_PROMPT_KEYS,
    logits_path,
    seed_chat_prompts,
    tensor_parallel_unsupported,
)
from pytest_ascend.measure.generation import measure_generation
from pytest_ascend.measure.roofline import roofline_metrics
from pytest_ascend.model.arithmetic import attention_heads, kv_heads
from pytest_ascend.model.compare import compare_greedy
from pytest_ascend.model.greedy import greedy_generate
from pytest_ascend.model.loading import resolve_model_dir
from pytest_ascend.numerics.tolerance import tie_margin
from pytest_ascend.processes import run_helper

pytestmark = pytest.mark.npu

NEW_TOKENS = 64
TIMEOUT_S = 1800  # eight ranks each loading their share of a 14B checkpoint


class TensorParallelJob:
    """The torchrun job for the session's model on the selected cards, run on demand."""

    def __init__(self, plan, cards, model_config, out, progress):
        unsupported = tensor_parallel_unsupported()
        if unsupported is not None:
            pytest.skip(unsupported)
        self.layout = rank_layout(cards)  # rank i drives layout.cards[i]
        self.ranks = self.layout.ranks
        self.cards, self.out, self.progress = cards, out, progress
        splits = (attention_heads(model_config), kv_heads(model_config))
        if self.ranks < 2:
            pytest.skip("tensor parallel needs two or more cards: select them with "
                        "--ascend-devices=0,1 (or all)")
        if any(count % self.ranks for count in splits):
            pytest.skip(f"{splits[0]} attention / {splits[1]} KV heads do not split across "
                        f"{self.ranks} cards: select a number of cards that divides both")
        model_dir = resolve_model_dir(plan.settings.model, plan.settings.cache)
        extra = ["--trust-remote-code"] if plan.settings.trust_remote_code else []
        self.argv = torchrun_argv("pytest_ascend.box.tensor_parallel", self.ranks, [
            "--model", str(model_dir), "--dtype", plan.dtype, "--device", cards[0].kind,
            "--new-tokens", str(NEW_TOKENS), "--prompt-keys", ",".join(DEFAULT_PROMPT_KEYS),
            "--card-indices", ",".join(map(str, self.layout.card_indices)),
            "--out", str(out), *extra])
        self.report = None

    def run(self):
        self.progress(f"tensor parallel: {self.ranks} ranks on {self.cards[0].kind} "
                      f"({self.cards[0].name}), loading and decoding")
        proc = run_helper(self.argv, TIMEOUT_S, env=self.layout.env)
        assert proc.returncode == 0 and self.out.exists(), (
            f"the tensor-parallel job failed (exit {proc.returncode}): {proc.stderr[-1500:]}")
        self.report = json.loads(self.out.read_text())
        self.report["logits"] = torch.load(logits_path(self.out), weights_only=True)["logits"]
        return self.report

    def result(self):
        return self.report if self.report is not None else self.run()


@pytest.fixture(scope="module")
def tensor_parallel_job(ascend_plan, ascend_cards, model, tmp_path_factory, ascend_progress):
    return TensorParallelJob(ascend_plan, ascend_cards, model.config,
                             tmp_path_factory.mktemp("tensor-parallel") / "tp.json",
                             ascend_progress)


@pytest.fixture(scope="module")
def prompts(tokenizer):
    return seed_chat_prompts(tokenizer, DEFAULT_PROMPT_KEYS)


def test_tensor_parallel_decode(benchmark, tensor_parallel_job, model, tokenizer, prompts,
                                npu_device, device_limits, decoder_cost, ascend_progress):
    """TPOT split across the cards, and on one card, each with its roofline fraction:
    reported, not compared (a split model pays an all-reduce per layer, which a small model
    on a host platform never earns back)."""
    report = benchmark.pedantic(tensor_parallel_job.run, rounds=1, iterations=1)
    single = measure_generation(model, tokenizer, prompts, max_new_tokens=NEW_TOKENS,
                                device=npu_device)
    single_metrics = {**single.summary().metrics(),
                      **roofline_metrics(decoder_cost, device_limits, single.runs)}
    split, cards = report["metrics"], report["cards"]
    fractions = [card["roofline_fraction"] for card in cards]
    benchmark.extra_info.update(
        tp_size=report["tp_size"], backend=report["backend"], dtype=report["dtype"],
        ttft_ms=split["ttft_ms"], tpot_ms=split["tpot_ms"],
        output_tokens_per_s=split["output_tokens_per_s"],
        roofline_fraction=min(fractions), roofline_fraction_by_card=fractions,
        card_by_rank=[card["index"] for card in cards],
        bandwidth_gb_s_by_card=[card["bandwidth_gb_s"] for card in cards],
        weight_bytes_by_card=[card["weight_bytes"] for card in cards],
        tpot_ms_tp1=single_metrics["tpot_ms"],
        roofline_fraction_tp1=single_metrics["roofline_fraction"],
        rounds={"tpot_ms": report["rounds"]["tpot_ms"], "ttft_ms": report["rounds"]["ttft_ms"]},
    )
    ascend_progress(
        f"tensor parallel: TPOT {split['tpot_ms']:.2f} ms at TP {report['tp_size']} "
        f"(roofline per card {', '.join(f'{f:.2f}' for f in fractions)}), "
        f"{single_metrics['tpot_ms']:.2f} ms at TP 1 "
        f"(roofline {single_metrics['roofline_fraction']:.2f})")
    assert report["tp_size"] == tensor_parallel_job.ranks == len(cards)
    # each rank reported the card it drove, as the session numbers it
    assert [card["index"] for card in cards] == tensor_parallel_job.layout.card_indices
    assert split["output_tokens"] == NEW_TOKENS
    whole = sum(p.numel() * p.element_size() for p in model.parameters())
    for card in cards:
        # every card holds a share of the weights, and no card the whole of them
        assert 0 < card["weight_bytes"] < whole, card
        # a fraction of a measured limit above 1: the model's cost or the timing is wrong
        assert 0 < card["roofline_fraction"] <= 1.05, card


def test_tensor_parallel_greedy_equals_single_card(tensor_parallel_job, model, tokenizer,
                                                    prompts, ascend_plan):
    """Greedy split across the cards picks the tokens one card picks, or departs only where
    the model was nearly undecided (the near-tie rule of the batch tests)."""
    report = tensor_parallel_job.result()
    reference = greedy_generate(model, tokenizer, prompts, NEW_TOKENS, ignore_eos=True)
    tolerance = tie_margin(ascend_plan.dtype, layers=model.config.num_hidden_layers)
    for key, expected, tokens, logits in zip(DEFAULT_PROMPT_KEYS, reference, report["tokens"],
                                             report["logits"]):
        assert len(tokens) == NEW_TOKENS
        verdict = compare_greedy(expected.tokens, expected.logits, tokens, logits, tolerance)
        assert verdict.close, (f"{key}: TP {report['tp_size']} greedy vs one card "
                               f"{verdict.describe()}")
    distinct = {tok for tokens in report["tokens"] for tok in tokens}
    assert len(distinct) > NEW_TOKENS // 4, "the split model repeats a few tokens: degenerate"
