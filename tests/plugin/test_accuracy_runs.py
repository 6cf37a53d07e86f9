"""Accuracy end to end through pytest on the tiny model, as a user runs it: record, then
compare with itself (it passes, nothing changed); a copy of the model with planted weight
noise changes answers, and they are listed; a copy that really answers worse fails, naming
the questions it lost; bad input is one line at session start."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pytest_ascend.accuracy.answering import ask_model
from pytest_ascend.accuracy.evalset import load_eval_set
from pytest_ascend.accuracy.generate import arithmetic_lines

ACCURACY_TEST = Path(__file__).resolve().parents[1] / "compat" / "test_accuracy.py"


def run_accuracy(workdir, *args):
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-m", "npu",
         str(ACCURACY_TEST), "-rs", *args], cwd=workdir, capture_output=True, text=True,
        timeout=600, env=dict(os.environ))


def test_record_then_compare_with_itself_passes_with_nothing_changed(tmp_path):
    gold = tmp_path / "gold"
    asked = ("--ascend-eval=arithmetic", "--ascend-eval-limit=8")
    recorded = run_accuracy(tmp_path, *asked, f"--ascend-golden-record={gold}")
    assert recorded.returncode == 0, recorded.stdout[-3000:]
    assert "recorded every answer in" in recorded.stdout
    (record,) = gold.glob("accuracy/arithmetic-*/*.json")
    document = json.loads(record.read_text())
    assert len(document["results"]) == 8 and document["eval"]["fewshot"] == 3
    assert document["eval"]["scorer"].startswith("pytest-ascend scoring 1: lm-eval 0.4.13")
    compared = run_accuracy(tmp_path, *asked, f"--ascend-golden={gold}",
                            "--benchmark-json=bench.json")
    assert compared.returncode == 0, compared.stdout[-3000:]
    assert "over 8 paired questions; 0 lost, 0 gained, 0 other answers changed" in \
        compared.stdout
    extra = json.loads((tmp_path / "bench.json").read_text())["benchmarks"][0]["extra_info"]
    assert extra["questions"] == 8 and extra["changed"] == 0
    low, high = extra["accuracy_interval"]
    assert low <= extra["accuracy"] <= high
    again = run_accuracy(tmp_path, *asked, f"--ascend-golden-record={gold}")
    assert again.returncode == 1
    assert "already holds this stack's answers; delete it to record them again" in again.stdout


@pytest.fixture(scope="module")
def answered_by_tiny(tmp_path_factory, tiny):
    """A multiple-choice set whose answers are the tiny model's own choices: accuracy 1 for
    the tiny model, so that a model that answers otherwise really drops."""
    path = tmp_path_factory.mktemp("eval") / "own-choices.jsonl"
    lines = list(arithmetic_lines(count=40, seed=7, choices=True))
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    evalset = load_eval_set(str(path))
    chosen = {r.id: r.response for r in ask_model(tiny.model, tiny.tokenizer, evalset,
                                                  evalset.questions)}
    for line in lines:
        line["answer"] = chosen.get(line["id"], line["answer"])
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def noisy_copy(checkpoint_dir, target, scale):
    """The checkpoint with Gaussian noise of `scale` x each tensor's spread on every weight."""
    from transformers import AutoModelForCausalLM

    shutil.copytree(checkpoint_dir, target)
    model = AutoModelForCausalLM.from_pretrained(target)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.add_(torch.randn(tensor.shape, generator=generator) * scale *
                            tensor.std())
    model.save_pretrained(target)
    return target


def test_planted_weight_noise_lists_changed_answers_and_a_real_drop_fails(
        tmp_path, answered_by_tiny, checkpoint_dir):
    gold = tmp_path / "gold"
    asked = f"--ascend-eval={answered_by_tiny}"
    recorded = run_accuracy(tmp_path, asked, f"--ascend-golden-record={gold}")
    assert recorded.returncode == 0, recorded.stdout[-3000:]
    assert "accuracy 1.000" in recorded.stdout
    light = noisy_copy(checkpoint_dir, tmp_path / "light-noise", 0.02)
    compared = run_accuracy(tmp_path, asked, f"--ascend-golden={gold}", "--ascend-device=cpu",
                            f"--ascend-model={light}", "--json-report",
                            "--json-report-file=light.json")
    assert "note: the record was made with model tiny" in compared.stdout
    report = json.loads((tmp_path / "light.json").read_text())
    (call,) = [t for t in report["tests"] if t["nodeid"].endswith("test_accuracy")]
    properties = {}
    for item in call["user_properties"]:
        properties.update(item)
    changed = properties["accuracy_changed"]
    assert changed, compared.stdout[-3000:]
    for entry in changed:  # every changed question is in the report, both answers with it
        assert entry["then"]["response"] != entry["now"]["response"]
        assert f"lost {entry['id']}: " in compared.stdout or len(changed) > 10
    heavy = noisy_copy(checkpoint_dir, tmp_path / "heavy-noise", 1.0)
    failed = run_accuracy(tmp_path, asked, f"--ascend-golden={gold}", f"--ascend-model={heavy}",
                          "--ascend-device=cpu", "--ascend-eval-shown=3")
    assert failed.returncode == 1, failed.stdout[-3000:]
    assert "accuracy dropped from 1.000 to " in failed.stdout
    assert "exact McNemar p = " in failed.stdout and "< 0.01" in failed.stdout
    lost = [line for line in failed.stdout.splitlines() if "pytest-ascend: lost arith-7-" in line]
    assert len(lost) == 3 and all("(right) -> " in line and "(wrong)" in line for line in lost)
    assert "more (all of them in the report)" in failed.stdout


@pytest.mark.parametrize("args, message", [
    (("--ascend-eval=missing.jsonl",), "--ascend-eval=missing.jsonl: cannot read it"),
    (("--ascend-golden-record=gold",), "--ascend-golden-record=gold records the answers to an "
                                       "eval set: give --ascend-eval too"),
    (("--ascend-eval=arithmetic", "--ascend-golden-record=a", "--ascend-golden=b"),
     "--ascend-golden-record and --ascend-golden: give one"),
    (("--ascend-eval=bad.jsonl",), "bad.jsonl:2: not JSON"),
])
def test_bad_accuracy_options_are_one_line_before_anything_loads(tmp_path, args, message):
    (tmp_path / "bad.jsonl").write_text('{"question": "q", "answer": "#### 1"}\n{oops\n')
    (tmp_path / "b").mkdir()
    done = run_accuracy(tmp_path, *args)
    assert done.returncode == 4, done.stdout[-2000:] + done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1 and message in errors[0], done.stderr[-2000:]
    assert "Traceback" not in done.stderr
