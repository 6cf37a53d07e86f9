"""The built-in model: deterministic, atomic, a real Qwen2 checkpoint with Qwen's template."""

import hashlib

import pytest
from transformers import AutoTokenizer

from pytest_ascend.model import tiny
from pytest_ascend.model.prompts import SEED_PROMPTS


def digest(directory):
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(directory.iterdir())}


def test_same_recipe_gives_identical_files(tmp_path):
    a = tiny.ensure_built(tiny.TinyRecipe(), tmp_path / "a")
    b = tiny.ensure_built(tiny.TinyRecipe(), tmp_path / "b")
    assert a.name == b.name
    assert digest(a) == digest(b)
    assert {"config.json", "model.safetensors", "tokenizer.json", "generation_config.json"} <= set(
        digest(a)
    )


def test_cached_build_is_reused_and_other_recipes_get_their_own(shared_cache):
    first = tiny.ensure_built(tiny.TinyRecipe(), shared_cache)
    stamp = (first / "model.safetensors").stat().st_mtime_ns
    assert tiny.ensure_built(tiny.TinyRecipe(), shared_cache) == first
    assert (first / "model.safetensors").stat().st_mtime_ns == stamp
    other = tiny.TinyRecipe(num_hidden_layers=2)
    assert tiny.ensure_built(other, shared_cache) != first


def test_crash_mid_build_leaves_no_model_and_no_staging(tmp_path, monkeypatch):
    def crash(recipe, out_dir):
        out_dir.mkdir(parents=True)
        (out_dir / "config.json").write_text("{}")
        raise KeyboardInterrupt("killed mid-build")

    monkeypatch.setattr(tiny, "build_checkpoint", crash)
    with pytest.raises(KeyboardInterrupt):
        tiny.ensure_built(tiny.TinyRecipe(), tmp_path)
    assert list((tmp_path / "models").iterdir()) == []


def test_losing_a_build_race_uses_the_winners_model(tmp_path, monkeypatch):
    recipe = tiny.TinyRecipe()
    real_build = tiny.build_checkpoint

    def build_while_another_process_finishes(recipe_, out_dir):
        real_build(recipe_, tmp_path / "models" / f"tiny-{recipe.key()}")  # the other builder
        real_build(recipe_, out_dir)

    monkeypatch.setattr(tiny, "build_checkpoint", build_while_another_process_finishes)
    path = tiny.ensure_built(recipe, tmp_path)
    assert path.name == f"tiny-{recipe.key()}"
    assert [p.name for p in (tmp_path / "models").iterdir()] == [path.name]


def test_spec_overrides_and_draft_shares_the_vocabulary():
    recipe = tiny.parse_spec("tiny:num_hidden_layers=2,hidden_size=64,rope_theta=10000")
    assert (recipe.num_hidden_layers, recipe.hidden_size, recipe.rope_theta) == (2, 64, 10000.0)
    draft = tiny.parse_spec("tiny-draft", "tiny:hidden_size=64")
    assert draft.num_hidden_layers == 1 and draft.hidden_size == 64
    assert draft.vocab_size == recipe.vocab_size


@pytest.mark.parametrize(
    "spec, message",
    [("tiny:layers=2", "not key=value with a key"), ("tiny:hidden_size=abc", "not a number"),
     ("tiny:num_key_value_heads=3", "not a multiple")],
)
def test_bad_specs_are_explained(spec, message):
    with pytest.raises(tiny.RecipeError, match=message):
        tiny.parse_spec(spec)


def test_tokenizer_has_chatml_template_eos_pad_and_round_trips(shared_cache):
    tok = AutoTokenizer.from_pretrained(tiny.ensure_built(tiny.TinyRecipe(), shared_cache))
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>"
    text = tok.apply_chat_template(
        [{"role": "user", "content": "中国的首都是哪里?"}], tokenize=False, add_generation_prompt=True
    )
    assert text == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\n中国的首都是哪里?<|im_end|>\n<|im_start|>assistant\n"
    )
    for prompt in list(SEED_PROMPTS.values()) + ["def f(x):\n    return x ** 2\n"]:
        ids = tok(prompt, add_special_tokens=False)["input_ids"]
        assert tok.decode(ids) == prompt
        assert len(ids) < len(prompt.encode("utf-8")), "BPE merges should compress the text"
    assert len(tok("<|im_end|>", add_special_tokens=False)["input_ids"]) == 1
