"""What differs between transformers releases, held to one behaviour on whichever release
this environment has: the tokenizer's extra inputs, the cache a forward hands back, and
the one definition of where a sequence ends. `.ci/oldest-stack` runs these on the oldest
stack pyproject.toml claims (transformers 4.45), the main CI leg on the newest."""

import json
import shutil

import pytest
import torch

from pytest_ascend.model.greedy import eos_ids, greedy_continue, greedy_generate, until_eos
from pytest_ascend.model.hf_compat import (
    cache_from_tensors,
    cache_tensors,
    crop_cache,
    forward_kwargs,
    output_cache,
)
from pytest_ascend.model.loading import load_model
from pytest_ascend.platforms.cpu import CpuDevice

PROMPT = "请介绍一下人工智能。 def fib(n):"
NEW_TOKENS = 6


@pytest.fixture(scope="module")
def token_type_checkpoint(checkpoint_dir, tmp_path_factory):
    """A checkpoint whose tokenizer returns token_type_ids, as transformers 4.x's
    PreTrainedTokenizerFast does by default and BERT-style tokenizer configs ask for."""
    target = tmp_path_factory.mktemp("token-types") / "Tiny-With-Token-Types"
    shutil.copytree(checkpoint_dir, target)
    config_file = target / "tokenizer_config.json"
    config = json.loads(config_file.read_text())
    config["model_input_names"] = ["input_ids", "token_type_ids", "attention_mask"]
    config_file.write_text(json.dumps(config))
    return target


def test_tokenizer_inputs_the_model_has_no_parameter_for_never_reach_it(
        token_type_checkpoint, shared_cache):
    model, tokenizer = load_model(str(token_type_checkpoint), CpuDevice(), "float32",
                                  cache_dir=shared_cache)

    assert "token_type_ids" not in tokenizer(PROMPT)
    generated = greedy_generate(model, tokenizer, [PROMPT, PROMPT + " again"], NEW_TOKENS,
                                ignore_eos=True)
    assert [len(out.tokens) for out in generated] == [NEW_TOKENS, NEW_TOKENS]
    with torch.inference_mode():
        assert model(**tokenizer(PROMPT, return_tensors="pt")).logits.shape[1] > 0


def test_a_forward_without_a_cache_hands_back_one_that_decodes_like_generate(tiny):
    """transformers 4.x returns the legacy tuple of (keys, values) when it was given no
    cache object; every caller must still get a cache it can crop, copy and extend."""
    model, tokenizer = tiny.model, tiny.tokenizer
    ids = tokenizer(PROMPT, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        out = model(input_ids=ids, **forward_kwargs(model))
    cache = output_cache(out)

    layers = cache_tensors(cache)
    assert len(layers) == model.config.num_hidden_layers
    assert all(keys.shape[2] == ids.shape[1] for keys, _ in layers)
    reference = greedy_generate(model, tokenizer, [PROMPT], NEW_TOKENS, ignore_eos=True)[0]
    copied = cache_from_tensors([(k.clone(), v.clone()) for k, v in layers], model.config)
    assert greedy_continue(model, copied, out.logits[:, -1, :], NEW_TOKENS).tokens == \
        reference.tokens
    crop_cache(cache, ids.shape[1] - 2)
    assert cache.get_seq_length() == ids.shape[1] - 2


def test_one_definition_of_where_a_sequence_ends():
    """greedy_generate and speculative decoding share `until_eos`, which takes the
    generation config's eos in each form it comes in (one id, a list, none)."""
    assert until_eos([5, 7, 9, 7], 7) == [5, 7]
    assert until_eos([5, 7, 9], [9, 3]) == [5, 7, 9]
    assert until_eos([5, 7], None) == [5, 7]
    assert until_eos([5, 7], {7}) == [5, 7]
    assert eos_ids([4, None]) == {4} and eos_ids(None) == set()
