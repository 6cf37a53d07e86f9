"""A checkpoint whose vocabulary is larger than its tokenizer's (a Qwen2.5 config has 152064
rows for ~151.6k tokens; a mismatched tokenizer has far fewer): when greedy picks an id the
tokenizer does not have, the compat suite says model and tokenizer do not match, rather than
'only special tokens'."""

import inspect
from pathlib import Path

import torch

COMPAT_INFERENCE = Path(__file__).resolve().parents[1] / "compat" / "test_inference.py"


def test_ids_beyond_the_tokenizer_are_named_as_a_mismatch(pytester, checkpoint_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from pytest_ascend.model.hf_compat import DTYPE_KWARG

    tokenizer = AutoTokenizer.from_pretrained(checkpoint_dir)
    model = AutoModelForCausalLM.from_pretrained(checkpoint_dir, **{DTYPE_KWARG: torch.float32})
    extra = 512
    # mean_resizing (transformers 4.46+) off: the new rows are set below, not averaged
    resize = model.resize_token_embeddings
    quiet = {"mean_resizing": False} if "mean_resizing" in inspect.signature(resize).parameters \
        else {}
    resize(len(tokenizer) + extra, **quiet)
    with torch.no_grad():  # the rows past the tokenizer win every argmax
        model.lm_head.weight[len(tokenizer):] = 5 * model.lm_head.weight[:extra].abs()
    mismatched = tmp_path / "mismatched"
    model.save_pretrained(mismatched)
    tokenizer.save_pretrained(mismatched)

    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", f"--ascend-model={mismatched}", "--ascend-device=cpu",
        f"{COMPAT_INFERENCE}::test_greedy_generation_is_nonempty_repeatable_and_varied[qa_ai]",
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([f"*the model generated ids its tokenizer does not have*the "
                                 f"tokenizer has {len(tokenizer)} tokens, the model's "
                                 f"vocabulary {len(tokenizer) + extra}): model and tokenizer do "
                                 f"not match*"])
