"""The seed workloads: the prompts users ran on the Atlas box, and long inputs built from text.

Kept in one place so the compat, perf and feature suites measure the same requests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pytest_ascend.model.tiny import corpus_text

SEED_PROMPTS: dict[str, str] = {
    "qa_ai": "请介绍一下人工智能。",
    "qa_capital": "中国的首都是哪里?",
    "code_fibonacci": "请写一个简单的Python函数计算斐波那契数列。",
    "translate_zh_en": "请把下面这句话翻译成英文：今天天气很好，我们去公园散步吧。",
    "translate_en_zh": "Please translate the following sentence into Chinese: "
    "Machine learning models need large amounts of data.",
    "long_continuation": "请继续写下面的故事：在一个遥远的山村里，住着一位年迈的木匠。",
}


def chat_prompt(tokenizer: Any, text: str) -> str:
    """`text` as a user turn in the model's chat template (ChatML for Qwen), ready to generate."""
    return conversation_prompt(tokenizer, [{"role": "user", "content": text}])


def conversation_prompt(tokenizer: Any, messages: list) -> str:
    """A conversation (role/content messages) in the model's chat template, ready for the
    assistant's next turn; the contents one per line for a tokenizer without a template."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False,
                                             add_generation_prompt=True)
    return "\n".join(message["content"] for message in messages)


def long_prompt_ids(tokenizer: Any, n_tokens: int) -> list[int]:
    """Exactly `n_tokens` token ids of natural zh/en/code text (the bundled corpus, repeated)."""
    piece = tokenizer(corpus_text(), add_special_tokens=False)["input_ids"]
    if not piece:
        raise ValueError("the tokenizer produced no tokens for the corpus")
    repeats = -(-n_tokens // len(piece))
    return (piece * repeats)[:n_tokens]


@dataclass(frozen=True)
class Workload:
    """One of the seed's request types: its prompts (keys of SEED_PROMPTS) and answer length."""

    name: str
    prompt_keys: tuple[str, ...]
    max_new_tokens: int

    def chat_prompts(self, tokenizer: Any) -> list[str]:
        return [chat_prompt(tokenizer, SEED_PROMPTS[key]) for key in self.prompt_keys]


# The four workloads the seed timed on the Atlas box, with answer lengths typical of each.
SEED_WORKLOADS: tuple[Workload, ...] = (
    Workload("short_qa", ("qa_ai", "qa_capital"), 64),
    Workload("code_generation", ("code_fibonacci",), 128),
    Workload("translation", ("translate_zh_en", "translate_en_zh"), 64),
    Workload("long_continuation", ("long_continuation",), 256),
)
