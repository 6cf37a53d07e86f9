"""Loading checkpoints: what is refused before the session, and what the loader refuses."""

import json
import shutil
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from pytest_ascend.model.loading import (
    CheckpointInfo,
    ModelLoadError,
    ModelSpecError,
    check_fits,
    inspect_checkpoint,
    load_model,
)
from pytest_ascend.platforms import resolve_device


@pytest.fixture
def writable_checkpoint(checkpoint_dir, tmp_path):
    target = tmp_path / "ckpt"
    shutil.copytree(checkpoint_dir, target)
    return target


def test_inspect_counts_parameters_from_headers(checkpoint_dir):
    info = inspect_checkpoint(str(checkpoint_dir))
    tensors = load_file(checkpoint_dir / "model.safetensors")
    assert info.model_type == "qwen2"
    assert info.parameters == sum(t.numel() for t in tensors.values())


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda d: (d / "config.json").unlink(), "no config.json"),
        (lambda d: (d / "config.json").write_text("{not json"), "config.json is unreadable"),
        (lambda d: (d / "model.safetensors").unlink(), "no weight files"),
        (lambda d: (d / "tokenizer.json").unlink() or (d / "tokenizer_config.json").unlink(),
         "no tokenizer files"),
    ],
    ids=["no-config", "bad-config", "no-weights", "no-tokenizer"],
)
def test_inspect_names_what_is_wrong(writable_checkpoint, damage, message):
    damage(writable_checkpoint)
    with pytest.raises(ModelSpecError, match=message):
        inspect_checkpoint(str(writable_checkpoint))


def test_missing_shard_in_index_is_named(writable_checkpoint):
    index = {"metadata": {}, "weight_map": {"lm_head.weight": "model-00002-of-00002.safetensors"}}
    (writable_checkpoint / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(ModelSpecError, match="model-00002-of-00002.safetensors"):
        inspect_checkpoint(str(writable_checkpoint))


def test_a_checkpoint_missing_a_tensor_does_not_load_silently(writable_checkpoint, tmp_path):
    tensors = load_file(writable_checkpoint / "model.safetensors")
    del tensors["lm_head.weight"]
    save_file(tensors, writable_checkpoint / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ModelLoadError, match="1 weight tensor.*lm_head.weight"):
        load_model(str(writable_checkpoint), resolve_device("cpu"), "float32",
                   cache_dir=tmp_path)


def test_load_model_gives_eval_model_in_dtype_and_left_padding(checkpoint_dir, tmp_path):
    model, tokenizer = load_model(
        str(checkpoint_dir), resolve_device("cpu"), "bfloat16", cache_dir=tmp_path
    )
    assert not model.training
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert tokenizer.padding_side == "left" and tokenizer.pad_token is not None


QWEN_14B = CheckpointInfo(Path("/models/Qwen2.5-14B"), model_type="qwen2",
                          parameters=14_770_000_000, attention_heads=40)


def test_model_too_large_for_one_card_names_the_cards_that_hold_it():
    with pytest.raises(ModelSpecError, match=r"need 27\.5 GiB but npu:0 has 24\.0 GiB free; "
                       r"select 2 cards .*13\.8 GiB each\): --ascend-devices=0,1$"):
        check_fits(QWEN_14B, "float16", 24 * 2**30, "npu:0")
    with pytest.raises(ModelSpecError, match=r"--ascend-devices=0,1,2,3$"):
        check_fits(QWEN_14B, "float16", 12 * 2**30, "npu:0", selected_cards=2)
    assert check_fits(QWEN_14B, "float16", 40 * 2**30, "npu:0") is None  # fits one card


def test_model_held_by_the_selected_cards_skips_only_the_single_card_tests():
    reason = check_fits(QWEN_14B, "float16", 24 * 2**30, "npu:0", selected_cards=8)
    assert "single-card tests skip" in reason and "split 2 ways (SGLang --tp-size 2)" in reason


def test_a_split_must_divide_the_heads_and_fit_eight_cards():
    odd = CheckpointInfo(Path("/m"), model_type="qwen2", parameters=14_770_000_000,
                         attention_heads=6)  # splits 2 ways only: 13.8 GiB a card
    with pytest.raises(ModelSpecError, match=r"select 2 cards"):
        check_fits(odd, "float16", 16 * 2**30, "npu:0")
    with pytest.raises(ModelSpecError, match=r"a split over 8 such cards does not fit"):
        check_fits(odd, "float16", 8 * 2**30, "npu:0", selected_cards=8)


def test_builtin_build_and_load_under_ten_seconds(tmp_path):
    start = time.perf_counter()
    model, tokenizer = load_model("tiny", resolve_device("cpu"), "float32",
                                  cache_dir=tmp_path)
    elapsed = time.perf_counter() - start
    assert model.config.model_type == "qwen2"
    assert elapsed < 10.0, f"building and loading the tiny model took {elapsed:.1f} s"
