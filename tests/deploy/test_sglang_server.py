"""The real SGLang server the suite launched (or was pointed at): identity, greedy agreement
with the session's transformers model, prefix caching, speculative stats and load."""

import math
import time

import pytest

from pytest_ascend.measure.interleave import bound_problem, round_ratios
from pytest_ascend.measure.stats import median
from pytest_ascend.model.greedy import greedy_generate
from pytest_ascend.model.prompts import SEED_PROMPTS, chat_prompt, long_prompt_ids
from pytest_ascend.numerics.tolerance import tie_margin
from pytest_ascend.serving.load import LoadSpec, run_load
from pytest_ascend.serving.sglang_client import load_sender
from pytest_ascend.serving.workloads import seed_requests
from pytest_ascend.ascend_session import of

pytestmark = pytest.mark.sglang

NEW_TOKENS = 24


def test_server_is_healthy_and_serves_the_sessions_model(sglang_server, ascend_plan,
                                                          pytestconfig):
    assert sglang_server.healthy()
    info = sglang_server.model_info()
    facts = of(pytestconfig).ascend_block()["sglang_server"]
    assert facts["version"], "the server did not report its version"
    if facts["launched"]:
        assert info["model_path"] == facts["model_path"]
        assert ascend_plan.settings.model.split(":")[0] in info["model_path"] or \
            facts["model_path"].endswith(info["model_path"].rsplit("/", 1)[-1])


def _server_tokens(sglang_server, ids):
    out = sglang_server.generate(ids, NEW_TOKENS, top_logprobs=5, ignore_eos=True)
    return out["output_ids"], out["meta_info"]


@pytest.mark.parametrize("name", sorted(SEED_PROMPTS))
def test_greedy_output_matches_the_transformers_model(sglang_server, model, tokenizer,
                                                      ascend_plan, name):
    """Token for token, or diverging only at a near-tie on both sides (vLLM's
    check_logprobs_close rule), after which the texts are different and not compared."""
    prompt = chat_prompt(tokenizer, SEED_PROMPTS[name])
    ids = tokenizer(prompt)["input_ids"]
    server, meta = _server_tokens(sglang_server, ids)
    local = greedy_generate(model, tokenizer, [prompt], NEW_TOKENS, ignore_eos=True)[0]
    if server == local.tokens:
        return
    step = next(i for i, (a, b) in enumerate(zip(server, local.tokens)) if a != b)
    top = {tok: lp for lp, tok, *_ in meta["output_top_logprobs"][step]}
    local_lp = local.logits[step].double().log_softmax(-1)
    margin_local = float(local_lp[local.tokens[step]] - local_lp[server[step]])
    margin_server = top[server[step]] - top.get(local.tokens[step], -math.inf)
    tolerance = tie_margin(ascend_plan.dtype, layers=model.config.num_hidden_layers)
    assert margin_local <= tolerance and margin_server <= tolerance, (
        f"{name}: server and transformers diverge at token {step} beyond a near-tie "
        f"(margins {margin_local:.3g} / {margin_server:.3g}, tolerance {tolerance})")


def _streamed_ttft(sglang_server, ids):
    start = time.perf_counter()
    first, last = None, None
    for arrived, chunk in sglang_server.generate_stream(ids, 8, ignore_eos=True):
        first = first or arrived
        last = chunk
    return (first - start) * 1e3, last["meta_info"]


def test_radix_cache_reuses_a_shared_prefix(benchmark, sglang_server, tokenizer,
                                            ascend_perf_verdict, ascend_progress):
    """Each round: flush the radix cache, send the 1024-token prefix with one suffix (cold:
    nothing cached), then with another (warm: the prefix cached). Cold and warm alternate,
    so each round's ratio shares the round's load."""
    prefix = long_prompt_ids(tokenizer, 1024)
    salts = iter(range(11, 10_000))
    cold, warm = [], []

    def request_with_new_suffix(into):
        into.append(_streamed_ttft(sglang_server, prefix + [next(salts), next(salts)]))

    def flush_then_cold():
        assert sglang_server.flush_cache(), "the server refused /flush_cache"
        request_with_new_suffix(cold)

    benchmark.pedantic(request_with_new_suffix, args=(warm,), setup=flush_then_cold, rounds=5,
                       iterations=1)
    assert all(meta.get("cached_tokens", 0) == 0 for _, meta in cold), \
        "the cache was not empty after /flush_cache"
    assert all(meta["cached_tokens"] >= len(prefix) - 1 for _, meta in warm)
    speedup = round_ratios([ms for ms, _ in cold], [ms for ms, _ in warm])
    benchmark.extra_info.update(
        prefix_tokens=len(prefix), cold_ttft_ms=median(ms for ms, _ in cold),
        warm_ttft_ms=median(ms for ms, _ in warm), **speedup.report("ttft_speedup"),
    )
    ascend_progress(f"SGLang radix cache, 1024-token prefix: TTFT {speedup.describe()} "
                    f"shorter when cached")
    ascend_perf_verdict(bound_problem(speedup, "TTFT with the prefix cached over flushed",
                                      at_least=1.0))


def test_speculative_decoding_is_lossless_with_its_accept_length(benchmark, sglang_server,
                                                                  tokenizer, model):
    info = sglang_server.server_info()
    algorithm = info.get("speculative_algorithm")
    if not algorithm:
        pytest.skip("the server runs without speculative decoding: launch it with "
                    "--sglang-arg=--speculative-algorithm --sglang-arg=<EAGLE|NGRAM|...>")
    prompt = chat_prompt(tokenizer, SEED_PROMPTS["long_continuation"])
    ids = tokenizer(prompt)["input_ids"]
    out = benchmark.pedantic(sglang_server.generate, args=(ids, 64), kwargs={"ignore_eos": True},
                             rounds=1, iterations=1)
    meta = out["meta_info"]
    verify = meta.get("spec_verify_ct")
    accept_length = meta["completion_tokens"] / verify if verify else None
    benchmark.extra_info.update(speculative_algorithm=algorithm, spec_verify_ct=verify,
                                accept_length=accept_length)
    expected = greedy_generate(model, tokenizer, [prompt], 64, ignore_eos=True)[0].tokens
    assert out["output_ids"] == expected
    assert verify, "meta_info carries no spec_verify_ct under speculative decoding"


def test_concurrent_streaming_load(benchmark, sglang_server, tokenizer, ascend_progress):
    """The seed workloads' requests all at once, 8 in flight, streamed; metrics as SGLang's
    bench_serving defines them (serving.load)."""
    concurrency, count = 8, 8
    requests = seed_requests(count, tokenizer)
    spec = LoadSpec(math.inf, "burst", concurrency, time_limit_s=600, request_timeout_s=300)
    run = benchmark.pedantic(run_load, args=(load_sender(sglang_server, 300), requests, spec),
                             rounds=1, iterations=1)
    summary = run.summary()
    assert summary["completed"] == count, summary["errors"]
    assert [r.output_tokens for r in run.results] == [r.max_new_tokens for r in requests]
    benchmark.extra_info.update(
        concurrency=concurrency, completed=summary["completed"],
        ttft_ms=summary["median_ttft_ms"], ttft_p99_ms=summary["p99_ttft_ms"],
        tpot_ms=summary["median_tpot_ms"], tpot_p99_ms=summary["p99_tpot_ms"],
        itl_p99_ms=summary["p99_itl_ms"], e2e_ms=summary["median_e2e_ms"],
        e2e_p99_ms=summary["p99_e2e_ms"], request_throughput=summary["request_throughput"],
        output_tokens_per_s=summary["output_throughput"])
    ascend_progress(f"SGLang seed workloads x{concurrency}: TTFT p50 "
                    f"{summary['median_ttft_ms']:.0f} ms, TPOT p50 "
                    f"{summary['median_tpot_ms']:.1f} ms, "
                    f"{summary['output_throughput']:.0f} tok/s")


def test_openai_compatible_endpoints(sglang_server):
    completion = sglang_server.completions("今天天气很好,", 8)
    assert completion["choices"][0]["text"] and completion["usage"]["completion_tokens"] > 0
    chat = sglang_server.chat([{"role": "user", "content": "请介绍一下人工智能。"}], 8)
    assert chat["choices"][0]["message"]["content"] is not None
    chunks = [chunk for _, chunk in sglang_server.chat(
        [{"role": "user", "content": "中国的首都是哪里?"}], 8, stream=True)]
    assert len(chunks) >= 2
