"""Golden outputs, their comparison and perplexity, on the tiny model on CPU.

The comparison must pass where only rounding differs (float32 against itself, bfloat16 and
weights rounded to float16 against a float32 golden) and fail where the model computes
something else (noise planted in one layer's weights, one attention layer's scaling changed),
naming where. The measuring code is checked against independent computations.
"""

import copy
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pytest_ascend.cli import main
from pytest_ascend.model.loading import load_under_test
from pytest_ascend.numerics.check import compare_with_golden
from pytest_ascend.numerics.divergence import bounds_for, full_kl, shared_topk_delta, topk_kl
from pytest_ascend.numerics.fingerprint import model_fingerprint
from pytest_ascend.numerics.golden import (
    MANIFEST,
    TENSORS,
    GoldenError,
    read_golden,
    record_golden,
    write_golden,
)
from pytest_ascend.numerics.perplexity import sliding_nll, text_perplexity
from pytest_ascend.platforms.cpu import CpuDevice

REPO = Path(__file__).resolve().parents[2]
NUMERICS_SUITE = REPO / "tests" / "compat" / "test_numerics.py"
LAYERS = 4  # the tiny model's depth: the bounds below are those of its calibration


@pytest.fixture(scope="module")
def golden_dir(tiny, tmp_path_factory):
    """The tiny model's float32 golden, written to disk (read back by each test)."""
    golden = record_golden(tiny.model, tiny.tokenizer, dtype="float32", model_name="tiny",
                           fingerprint=model_fingerprint(tiny.path),
                           environment={"device_kind": "cpu"},
                           perplexity=text_perplexity(tiny.model, tiny.tokenizer).metrics())
    return write_golden(golden, tmp_path_factory.mktemp("golden"))


@pytest.fixture(scope="module")
def golden(golden_dir):
    return read_golden(golden_dir)


def problems_of(model, tokenizer, golden, dtype):
    report = compare_with_golden(model, golden, bounds_for(dtype, golden.dtype, LAYERS))
    return report, report.problems(lambda token: tokenizer.decode([token]))


def planted(model, change):
    model = copy.deepcopy(model)
    with torch.no_grad():
        change(model)
    return model


# The divergence measures, against independent computations ----------------------------------


def random_logprobs(positions, vocab, seed, scale=3.0):
    generator = torch.Generator().manual_seed(seed)
    return torch.log_softmax(torch.randn(positions, vocab, generator=generator,
                                         dtype=torch.float64) * scale, dim=1)


def test_topk_kl_is_the_kl_of_the_coarse_grained_distributions():
    golden, run = random_logprobs(5, 50, 1), random_logprobs(5, 50, 2)
    top = golden.topk(10, dim=1)
    measured = topk_kl(top.indices, top.values, run)
    for pos in range(5):  # by hand: 10 bins and one holding the rest of the mass
        p = [math.exp(v) for v in top.values[pos].tolist()]
        q = [math.exp(run[pos, int(i)]) for i in top.indices[pos]]
        p.append(1 - sum(p))
        q.append(1 - sum(q))
        expected = sum(a * math.log(a / b) for a, b in zip(p, q))
        assert measured[pos].item() == pytest.approx(expected, rel=1e-9)
    # never more than the full KL (data-processing inequality), equal to it with every token
    assert (measured <= full_kl(golden, run) + 1e-12).all()
    everything = golden.topk(50, dim=1)
    assert torch.allclose(topk_kl(everything.indices, everything.values, run),
                          full_kl(golden, run), atol=1e-12)
    assert topk_kl(top.indices, top.values, golden).abs().max() == 0


def test_shared_topk_delta_ignores_tokens_outside_either_top_k():
    golden = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]], dtype=torch.float64))
    run = torch.log(torch.tensor([[0.4, 0.05, 0.35, 0.2]], dtype=torch.float64))
    top = golden.topk(2, dim=1)  # tokens 0 and 1; the run's top-2 is tokens 0 and 2
    delta = shared_topk_delta(top.indices, top.values, run)
    assert delta.item() == pytest.approx(abs(math.log(0.5) - math.log(0.4)))


def test_sliding_window_perplexity_scores_each_token_once_with_its_window(tiny):
    ids = tiny.tokenizer("春天的早晨 the lighthouse keeper counts the steps; def take(self):",
                         add_special_tokens=False)["input_ids"][:40]
    window, stride = 16, 6
    nll, scored = sliding_nll(tiny.model, ids, window=window, stride=stride)
    expected = 0.0
    with torch.inference_mode():
        for t in range(1, len(ids)):  # token t is scored by window k = max(0, (t-W)//s + 1)
            begin = max(0, (t - window) // stride + 1) * stride
            logits = tiny.model(input_ids=torch.tensor([ids[begin:t]])).logits[0, -1]
            expected -= torch.log_softmax(logits.double(), dim=-1)[ids[t]].item()
    assert scored == len(ids) - 1
    assert nll == pytest.approx(expected, rel=1e-5)
    whole, _ = sliding_nll(tiny.model, ids, window=len(ids), stride=len(ids) - 1)
    with torch.inference_mode():
        logits = tiny.model(input_ids=torch.tensor([ids])).logits[0, :-1].double()
    direct = -torch.log_softmax(logits, dim=-1).gather(1, torch.tensor(ids[1:])[:, None]).sum()
    assert whole == pytest.approx(direct.item(), rel=1e-5)


def test_bounds_follow_the_looser_dtype_and_the_depth():
    fp16 = bounds_for("float16", "float32", LAYERS)
    assert bounds_for("float32", "float16", LAYERS) == fp16
    assert bounds_for("bfloat16", "float32", LAYERS).dlogprob > fp16.dlogprob
    assert bounds_for("float32", "float32", LAYERS).dlogprob < fp16.dlogprob
    assert bounds_for("float16", "float32", 4 * LAYERS).dlogprob == pytest.approx(
        2 * fp16.dlogprob)
    assert fp16.kl == pytest.approx(fp16.dlogprob ** 2 / 2)
    assert bounds_for("float16", "float32", LAYERS, slack=3).dlogprob == pytest.approx(
        3 * fp16.dlogprob)


# The comparison: rounding passes, wrong numerics fail ----------------------------------------


def test_float32_against_its_own_float32_golden_is_exact(tiny, golden):
    report, problems = problems_of(tiny.model, tiny.tokenizer, golden, "float32")
    metrics = report.metrics()
    assert problems == []
    assert metrics["token_agreement"] == 1.0
    assert metrics["golden_kl_max"] == 0.0 and metrics["golden_dlogprob_max"] == 0.0
    assert metrics["golden_positions"] == sum(len(p.tokens) for p in golden.prompts)
    assert {p.name for p in golden.prompts} >= {"qa_ai", "code_fibonacci", "long_continuation"}
    assert any(name.startswith("long_context_") for name in (p.name for p in golden.prompts))


def test_bfloat16_is_within_the_bounds_of_a_float32_golden(golden, shared_cache):
    bf16 = load_under_test("tiny", CpuDevice(), "bfloat16", cache_dir=shared_cache)
    report, problems = problems_of(bf16.model, bf16.tokenizer, golden, "bfloat16")
    metrics = report.metrics()
    assert problems == []
    assert 0 < metrics["golden_dlogprob_max"] <= metrics["golden_dlogprob_bound"]
    assert metrics["token_agreement"] < 1.0, "bfloat16 rounding flipped no near-tie at all"


def test_weights_rounded_to_float16_pass_the_float16_bounds(tiny, golden):
    def round_to_fp16(model):
        for param in model.parameters():
            param.copy_(param.half().float())

    _, problems = problems_of(planted(tiny.model, round_to_fp16), tiny.tokenizer, golden,
                              "float16")
    assert problems == []


def noise_in_one_layer(model):
    weight = model.model.layers[1].mlp.down_proj.weight
    generator = torch.Generator().manual_seed(7)
    weight += torch.randn(weight.shape, generator=generator) * weight.std() * 0.03


def one_attention_scaling_changed(model):
    """Every query x1.25 scales that layer's attention logits x1.25 (RoPE is a rotation),
    as a wrong softmax scale would; through the weights, since transformers 4.45's attention
    has no `scaling` attribute to change."""
    projection = model.model.layers[1].self_attn.q_proj
    projection.weight *= 1.25
    if projection.bias is not None:
        projection.bias *= 1.25


@pytest.mark.parametrize("change", [noise_in_one_layer, one_attention_scaling_changed])
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_wrong_numerics_fail_naming_the_first_divergence(tiny, golden, change, dtype):
    """Compared in float32, judged by the float32 bounds and by the looser float16 ones (an
    NPU's float16 run against a float32 golden)."""
    report, problems = problems_of(planted(tiny.model, change), tiny.tokenizer, golden, dtype)
    assert problems, f"{change.__name__} passed the {dtype} bounds"
    failing = next(p for p in report.prompts if p.unexplained)
    first = failing.unexplained[0]
    line = next(text for text in problems if "greedy token differs" in text)
    assert line.startswith(f"{failing.name}: greedy token differs at position {first.position} ")
    assert repr(tiny.tokenizer.decode([first.golden_token])) in line
    assert repr(tiny.tokenizer.decode([first.run_token])) in line


# The golden on disk ---------------------------------------------------------------------------


def copy_of(golden_dir, tmp_path):
    target = tmp_path / "golden"
    shutil.copytree(golden_dir, target)
    return target


def test_a_golden_is_readable_json_and_checksummed_tensors(golden_dir, golden):
    manifest = json.loads((golden_dir / MANIFEST).read_text())
    assert manifest["format"] == "pytest-ascend-golden" and manifest["version"] == 1
    assert manifest["tensors"]["bytes"] == (golden_dir / TENSORS).stat().st_size
    first = manifest["prompts"][0]
    assert len(first["tokens"]) == first["new_tokens"] == len(first["top1_margin"])
    assert first["answer"] and first["full_positions"] == [0, first["new_tokens"] // 2,
                                                           first["new_tokens"] - 1]
    assert golden.prompts[0].top_logprobs.dtype == torch.float64


@pytest.mark.parametrize("damage, named, why", [
    (lambda d: (d / TENSORS).write_bytes((d / TENSORS).read_bytes()[:-100]), TENSORS,
     "cut short or changed"),
    (lambda d: (d / MANIFEST).write_text((d / MANIFEST).read_text()[:500]), MANIFEST,
     "unreadable or cut short"),
    (lambda d: (d / MANIFEST).write_text(
        (d / MANIFEST).read_text().replace('"top_k": 20', '"top_k": 5')), MANIFEST,
     "edited or damaged"),
    (lambda d: (d / TENSORS).unlink(), TENSORS, "missing"),
])
def test_a_damaged_golden_is_refused_by_name(golden_dir, tmp_path, damage, named, why):
    target = copy_of(golden_dir, tmp_path)
    damage(target)
    with pytest.raises(GoldenError) as refused:
        read_golden(target)
    message = str(refused.value)
    assert str(target / named) in message and why in message and "\n" not in message


def test_recording_over_a_golden_needs_force(golden_dir, golden, tmp_path):
    target = copy_of(golden_dir, tmp_path)
    with pytest.raises(GoldenError, match="--force"):
        write_golden(golden, target)
    write_golden(golden, target, force=True)
    assert read_golden(target).manifest["prompts"] == golden.manifest["prompts"]
    assert sorted(p.name for p in target.iterdir()) == [MANIFEST, TENSORS]  # no staging left


def test_a_golden_of_another_model_stops_the_session_in_one_line(
        pytester, golden, checkpoint_dir, tmp_path):
    """Same architecture, one weight changed: the golden's checksum is not the model's."""
    other = tmp_path / "other-model"
    shutil.copytree(checkpoint_dir, other)
    weights = other / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01
    weights.write_bytes(bytes(data))
    recorded = dict(golden.manifest, model={"name": "other-model",
                                            "fingerprint": model_fingerprint(other)})
    foreign = write_golden(type(golden)(None, recorded, golden.prompts), tmp_path / "foreign")
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest(f"--ascend-model={checkpoint_dir}",
                                f"--ascend-golden={foreign}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if line.startswith("ERROR:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr.str()
    assert "was recorded from another model (other-model" in errors[0]
    assert "its weights differ" in errors[0]


# End to end: the command records, the suite compares, the history gates -----------------------


@pytest.fixture(scope="module")
def recorded_by_command(tmp_path_factory, shared_cache):
    out = tmp_path_factory.mktemp("recorded") / "golden"
    assert main(["golden", "record", "--out", str(out), "--cache", str(shared_cache)]) == 0
    return out


def test_the_command_refuses_to_overwrite_without_force(recorded_by_command, capsys):
    before = (recorded_by_command / MANIFEST).read_bytes()
    assert main(["golden", "record", "--out", str(recorded_by_command)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"pytest-ascend golden: --out {recorded_by_command} already holds a golden "
                   f"({MANIFEST}); pass --force to replace it, or choose another --out"]
    assert (recorded_by_command / MANIFEST).read_bytes() == before


@pytest.fixture(scope="module")
def compared_run(recorded_by_command, shared_cache, tmp_path_factory):
    """A real suite run against the command's golden, its benchmarks in pytest-benchmark's
    JSON and its metrics in the results log."""
    out = tmp_path_factory.mktemp("compared")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-m", "npu",
         str(NUMERICS_SUITE), f"--ascend-golden={recorded_by_command}",
         f"--ascend-cache={shared_cache}", f"--benchmark-json={out / 'bench.json'}",
         f"--ascend-results-log={out / 'results.jsonl'}"],
        capture_output=True, text=True, cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    return out, proc.stdout


def test_the_suite_compares_with_the_golden_and_records_the_figures(compared_run):
    out, stdout = compared_run
    assert "2 passed" in stdout
    assert "pytest-ascend: numerics compared with the golden of tiny in float32" in stdout
    assert "golden (float32) vs this run (float32): agreement 1.0000" in stdout
    bench = json.loads((out / "bench.json").read_text())
    extra = {b["name"]: b["extra_info"] for b in bench["benchmarks"]}
    assert extra["test_matches_golden"]["token_agreement"] == 1.0
    assert extra["test_matches_golden"]["golden_kl_mean"] == 0.0
    assert extra["test_perplexity_on_shipped_text"]["perplexity_vs_golden"] == 0.0
    logged = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    metrics = {r["nodeid"].rsplit("::", 1)[1]: r["metrics"] for r in logged
               if r["type"] == "test"}
    assert metrics["test_perplexity_on_shipped_text"]["perplexity"] > 1
    assert metrics["test_matches_golden"]["token_agreement"] == 1.0


def as_cann(run, directory, cann, **scaled):
    """A copy of the run under CANN `cann`, with extra_info metrics scaled (or set)."""
    data = copy.deepcopy(run)
    data["machine_info"]["ascend"]["cann"] = cann
    for bench in data["benchmarks"]:
        for metric, edit in scaled.items():
            if metric in bench["extra_info"]:
                value = bench["extra_info"][metric]
                bench["extra_info"][metric] = edit(value) if callable(edit) else value * edit
    directory.mkdir(exist_ok=True)
    path = directory / f"run-{cann}.json"
    path.write_text(json.dumps(data))
    return path


def gate(capsys, *files):
    code = main(["history", *[f"--json={f}" for f in files], "--fail-on-regression",
                 "--format=json"])
    report = json.loads(capsys.readouterr().out)
    verdicts = {(c["benchmark"].rsplit("::", 1)[-1], c["metric"]): c["verdict"]
                for ctx in report["contexts"] for c in ctx["comparisons"]}
    return code, verdicts


@pytest.mark.parametrize("edits, metric, expected", [
    ({}, "perplexity", "same"),
    ({"perplexity": 1.02}, "perplexity", "regression"),
    ({"perplexity": 0.98}, "perplexity", "improvement"),
    ({"golden_kl_mean": lambda _: 1e-3}, "golden_kl_mean", "regression"),
    ({"token_agreement": lambda _: 0.95}, "token_agreement", "regression"),
    ({"token_agreement": lambda _: 0.99}, "token_agreement", "same"),
])
def test_the_history_gates_numerics_drift_even_on_a_smoke_run(
        compared_run, tmp_path, capsys, edits, metric, expected):
    """Two 'CANN versions', one run each, of a smoke run: numerics repeat exactly on one
    stack, so one run per group is enough and the tiny model is judged too."""
    run = json.loads((compared_run[0] / "bench.json").read_text())
    assert run["machine_info"]["ascend"]["smoke"] is True
    code, verdicts = gate(capsys, as_cann(run, tmp_path, "8.0.RC1"),
                          as_cann(run, tmp_path, "8.1.RC1", **edits))
    name = ("test_perplexity_on_shipped_text" if metric == "perplexity"
            else "test_matches_golden")
    assert verdicts[(name, metric)] == expected
    assert code == (1 if expected == "regression" else 0)
