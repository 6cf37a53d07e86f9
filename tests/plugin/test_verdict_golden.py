"""Goldens on disk, on an in-memory model: what recording keeps, that a golden reads back
exactly, and that every kind of damage (cut short, edited, another version, files that
disagree, another model) is refused by name rather than compared against."""

import hashlib
import json
import os
import stat

import pytest
import torch

from conftest import in_memory_qwen2
from pytest_ascend.model.prompts import SEED_PROMPTS, SEED_WORKLOADS
from pytest_ascend.numerics.decoding import decode_answer
from pytest_ascend.numerics.golden import (
    FORMAT,
    MANIFEST,
    TENSORS,
    TOP_K,
    VERSION,
    Golden,
    GoldenError,
    check_model,
    full_positions,
    golden_prompts,
    read_golden,
    record_golden,
    write_golden,
)

FINGERPRINT = {"sha256": "a" * 64, "config_sha256": "c" * 64}
ENVIRONMENT = {"device_kind": "cpu", "device_name": "AMD EPYC"}


@pytest.fixture(scope="module")
def tokenizer():
    """A character-level tokenizer of printable ASCII built in memory (id 0 is unknown)."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"[UNK]": 0, **{chr(c): c - 31 for c in range(32, 127)}}
    core = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    return PreTrainedTokenizerFast(tokenizer_object=core, unk_token="[UNK]")


@pytest.fixture(scope="module")
def model():
    return in_memory_qwen2(vocab_size=96, max_positions=96)


@pytest.fixture(scope="module")
def golden(model, tokenizer):
    lines = []
    recorded = record_golden(model, tokenizer, dtype="float32", model_name="qwen-mini",
                             fingerprint=FINGERPRINT, environment=ENVIRONMENT,
                             perplexity={"value": 90.0}, progress=lines.append)
    return recorded, lines


@pytest.fixture(scope="module")
def stored():
    """A golden of two short prompts made by hand (what record_golden returns, without a
    model), for the tests of what is on disk."""
    from pytest_ascend.numerics.golden import GoldenPrompt

    torch.manual_seed(1)
    prompts, described = [], []
    for name, steps in (("a", 3), ("b", 5)):
        logprobs = torch.log_softmax(torch.randn(steps, 30, dtype=torch.float64), dim=1)
        top = logprobs.topk(TOP_K, dim=1)
        full = {pos: logprobs[pos].clone() for pos in full_positions(steps)}
        tokens = top.indices[:, 0].tolist()
        prompts.append(GoldenPrompt(name, [1, 2], tokens, top.indices.contiguous(),
                                    top.values.contiguous(), full))
        described.append({"name": name, "prompt_ids": [1, 2], "new_tokens": steps,
                          "tokens": tokens, "full_positions": full_positions(steps)})
    manifest = {"format": FORMAT, "version": VERSION, "created": "2026-12-02T00:00:00+00:00",
                "model": {"name": "qwen-mini", "fingerprint": FINGERPRINT, "vocab_size": 30},
                "dtype": "float32", "top_k": TOP_K, "environment": ENVIRONMENT,
                "perplexity": None, "prompts": described}
    return Golden(None, manifest, tuple(prompts))


def test_full_vocabulary_positions_are_first_middle_and_last():
    assert full_positions(64) == [0, 32, 63]
    assert full_positions(2) == [0, 1]
    assert full_positions(1) == [0]


def test_golden_prompts_are_the_seed_prompts_and_one_long_one(tokenizer):
    prompts = golden_prompts(tokenizer, max_positions=96)
    expected = [(key, w.max_new_tokens) for w in SEED_WORKLOADS for key in w.prompt_keys]
    assert [(name, steps) for name, _, steps in prompts[:-1]] == expected
    assert prompts[0][1] == tokenizer(SEED_PROMPTS[expected[0][0]])["input_ids"]
    name, ids, steps = prompts[-1]
    assert (name, len(ids), steps) == ("long_context_64", 64, 32)
    assert golden_prompts(tokenizer, max_positions=10_000)[-1][0] == "long_context_4096"


def test_recording_keeps_the_greedy_answer_its_top_k_and_the_full_vocabulary(golden, model,
                                                                            tokenizer):
    recorded, lines = golden
    manifest = recorded.manifest
    assert (manifest["format"], manifest["version"], manifest["dtype"], manifest["top_k"]) == \
        (FORMAT, VERSION, "float32", TOP_K)
    assert manifest["model"] == {"name": "qwen-mini", "fingerprint": FINGERPRINT,
                                 "vocab_size": 96}
    assert manifest["environment"] == ENVIRONMENT and manifest["perplexity"] == {"value": 90.0}
    assert manifest["created"].endswith("+00:00")
    assert recorded.directory is None and recorded.dtype == "float32"
    assert recorded.model_sha256 == "a" * 64 and recorded.perplexity == {"value": 90.0}
    prompts = golden_prompts(tokenizer, 96)
    assert [p.name for p in recorded.prompts] == [name for name, _, _ in prompts]
    assert len(lines) == len(prompts)
    assert lines[0] == (f"recording {prompts[0][0]} ({len(prompts[0][1])} prompt tokens, "
                        f"{prompts[0][2]} to generate)")
    for prompt, (name, ids, steps), described in zip(recorded.prompts, prompts,
                                                     manifest["prompts"]):
        answer = decode_answer(model, ids, steps)
        assert prompt.prompt_ids == list(ids) and prompt.tokens == answer.tokens
        top = answer.logprobs.topk(TOP_K, dim=1)
        assert torch.equal(prompt.top_ids, top.indices) and torch.equal(prompt.top_logprobs,
                                                                        top.values)
        assert sorted(prompt.full_logprobs) == full_positions(steps)
        for pos, row in prompt.full_logprobs.items():
            assert torch.equal(row, answer.logprobs[pos])
        assert described["name"] == name and described["new_tokens"] == steps
        assert described["prompt_ids"] == list(ids) and described["tokens"] == answer.tokens
        assert described["answer"] == tokenizer.decode(answer.tokens)
        assert described["prompt_text"] == tokenizer.decode(ids)
        assert described["full_positions"] == full_positions(steps)
        margins = top.values[:, 0] - top.values[:, 1]
        assert described["top1_margin"] == [round(float(m), 6) for m in margins]
    assert recorded.describe() == (f"golden of qwen-mini in float32, recorded "
                                   f"{manifest['created']} on cpu AMD EPYC")


def test_a_golden_reads_back_exactly(stored, tmp_path):
    recorded = stored
    out = write_golden(recorded, tmp_path / "g")
    assert out == tmp_path / "g" and sorted(p.name for p in out.iterdir()) == [MANIFEST, TENSORS]
    for name in (MANIFEST, TENSORS):
        assert stat.S_IMODE(os.stat(out / name).st_mode) == 0o644
    back = read_golden(out)
    assert back.directory == out and back.manifest["tensors"]["file"] == TENSORS
    assert back.manifest["tensors"]["bytes"] == (out / TENSORS).stat().st_size
    for a, b in zip(recorded.prompts, back.prompts):
        assert (a.name, a.prompt_ids, a.tokens) == (b.name, b.prompt_ids, b.tokens)
        assert torch.equal(a.top_ids, b.top_ids) and torch.equal(a.top_logprobs, b.top_logprobs)
        assert sorted(a.full_logprobs) == sorted(b.full_logprobs)
        for pos in a.full_logprobs:
            assert torch.equal(a.full_logprobs[pos], b.full_logprobs[pos])
    assert back.describe() == recorded.describe()


def test_an_existing_golden_is_replaced_only_when_forced(stored, tmp_path):
    recorded = stored
    write_golden(recorded, tmp_path)
    with pytest.raises(GoldenError) as refused:
        write_golden(recorded, tmp_path)
    assert str(refused.value) == (f"{tmp_path} already holds a golden ({MANIFEST}); pass "
                                  f"--force to replace it, or choose another --out")
    write_golden(recorded, tmp_path, force=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == [MANIFEST, TENSORS]
    read_golden(tmp_path)


AGAIN = "record it again with `pytest-ascend golden record --out DIR`"


@pytest.fixture
def written(stored, tmp_path):
    return write_golden(stored, tmp_path / "g")


def rewrite_manifest(directory, edit, reseal=True):
    from pytest_ascend.numerics.golden import _manifest_sha256

    path = directory / MANIFEST
    manifest = json.loads(path.read_text())
    edit(manifest)
    if reseal:
        manifest["manifest_sha256"] = _manifest_sha256(manifest)
    path.write_text(json.dumps(manifest))


def refusal(directory):
    with pytest.raises(GoldenError) as refused:
        read_golden(directory)
    return str(refused.value)


def test_no_manifest_is_no_golden(tmp_path):
    assert refusal(tmp_path) == f"{tmp_path}: no {MANIFEST}, so not a golden; {AGAIN}"


def test_a_manifest_cut_short_is_refused(written):
    text = (written / MANIFEST).read_text()
    (written / MANIFEST).write_text(text[: len(text) // 2])
    assert refusal(written).startswith(f"{written / MANIFEST} is unreadable or cut short (")
    assert refusal(written).endswith(f"); {AGAIN}")


@pytest.mark.parametrize("content", ['{"format": "something-else"}', "[1, 2]"])
def test_another_kind_of_file_is_not_a_golden(written, content):
    (written / MANIFEST).write_text(content)
    assert refusal(written) == f"{written / MANIFEST} is not a pytest-ascend golden; {AGAIN}"


def test_another_format_version_is_refused(written):
    rewrite_manifest(written, lambda m: m.update(version=VERSION + 1))
    assert refusal(written) == (f"{written / MANIFEST} is format version {VERSION + 1}, this "
                                f"pytest-ascend reads version {VERSION}; {AGAIN}")


def test_a_manifest_edited_by_hand_is_refused(written):
    rewrite_manifest(written, lambda m: m.update(dtype="float16"), reseal=False)
    assert refusal(written) == (f"{written / MANIFEST} was edited or damaged (its checksum "
                                f"does not match its content); {AGAIN}")


def test_missing_or_changed_tensors_are_refused(written):
    tensors = written / TENSORS
    data = tensors.read_bytes()
    size = len(data)
    tensors.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # same size, another sha256
    assert refusal(written) == (f"{tensors} is cut short or changed ({size} bytes, the "
                                f"manifest says {size}; or its sha256 differs); {AGAIN}")
    tensors.write_bytes(data[:100])
    assert refusal(written).startswith(f"{tensors} is cut short or changed (100 bytes, the "
                                       f"manifest says {size};")
    tensors.unlink()
    assert refusal(written) == f"{tensors} is missing; {AGAIN}"


@pytest.mark.parametrize("edit", [
    lambda m: m["prompts"][0].update(new_tokens=m["prompts"][0]["new_tokens"] + 1),
    lambda m: m["prompts"][0].update(tokens=m["prompts"][0]["tokens"][:-1]),
    lambda m: m["prompts"][0].update(full_positions=[0]),
    lambda m: m.update(top_k=TOP_K - 1),
    lambda m: m["prompts"][0].update(name="renamed"),
])
def test_files_that_disagree_with_each_other_are_refused(written, edit):
    rewrite_manifest(written, edit)
    message = refusal(written)
    assert message.startswith(f"{written}: the golden's files do not agree with each other (")
    assert message.endswith(f"); {AGAIN}")


def test_a_golden_of_another_model_is_refused_naming_what_differs(stored):
    recorded = stored
    check_model(recorded, FINGERPRINT, "this model")
    other_weights = {"sha256": "b" * 64, "config_sha256": "c" * 64}
    with pytest.raises(GoldenError) as refused:
        check_model(recorded, other_weights, "Qwen2.5-14B")
    assert str(refused.value) == (
        f"None was recorded from another model (qwen-mini, sha256 {'a' * 12}) than "
        f"Qwen2.5-14B (sha256 {'b' * 12}; its weights differ): record a golden of this model, "
        f"or pass the model the golden was recorded from")
    other_config = {"sha256": "b" * 64, "config_sha256": "d" * 64}
    with pytest.raises(GoldenError, match="its config differ"):
        check_model(recorded, other_config, "Qwen2.5-14B")


def test_a_golden_without_perplexity_or_environment():
    bare = Golden(None, {"dtype": "bfloat16", "model": {"name": "m"}, "created": "then"}, ())
    assert bare.perplexity is None and bare.dtype == "bfloat16"
    assert bare.describe() == "golden of m in bfloat16, recorded then on None None"


def test_the_manifest_checksum_is_stable_so_recorded_goldens_stay_readable():
    """sha256 of the manifest without its own checksum, as sorted, non-ASCII-escaped JSON:
    a golden recorded by an earlier pytest-ascend must verify under this one."""
    from pytest_ascend.numerics.golden import _manifest_sha256

    manifest = {"b": [1, 2.5], "a": "é", "manifest_sha256": "ignored"}
    assert _manifest_sha256(manifest) == \
        "34cde2fc5f8337109d9aeb9df6b9ffeef931cf84211dedcba19b8e5c2be0580f"


def test_the_files_on_disk_say_what_they_are(stored, tmp_path):
    from safetensors import safe_open

    out = write_golden(stored, tmp_path)
    with safe_open(str(out / TENSORS), framework="pt") as tensors:
        assert tensors.metadata() == {"format": FORMAT, "version": str(VERSION)}
        assert sorted(tensors.keys()) == sorted(
            f"{p}.{kind}" for p in ("a", "b") for kind in ("top_ids", "top_logprobs",
                                                           "full_logprobs"))
        assert tensors.get_tensor("b.full_logprobs").shape == (3, 30)
    text = (out / MANIFEST).read_text(encoding="utf-8")
    assert text.startswith('{\n "format": "pytest-ascend-golden",\n') and text.endswith("}\n")
    assert json.loads(text)["tensors"]["sha256"] == hashlib.sha256(
        (out / TENSORS).read_bytes()).hexdigest()
