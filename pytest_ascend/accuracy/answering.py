"""Asking an eval set: of the session's model (batched greedy generation, or the likelihood of
each choice), or of an SGLang server (the same prompts, the same stops, the same scoring).

GSM8K questions are generated greedily up to MAX_NEW_TOKENS, each sequence stopping at the
first of the stop strings (transformers' `stop_strings`; SGLang's `stop`), then cut there and
scored (`scoring.py`). A multiple-choice question is answered by the letter whose continuation
(` A`, ` B`, ...) has the highest log-likelihood after the prompt, summed over its tokens:
lm-eval's `multiple_choice` output type.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Sequence

import torch

from pytest_ascend.accuracy.evalset import GSM8K, EvalSet, Question
from pytest_ascend.accuracy.paired import QuestionResult
from pytest_ascend.accuracy.scoring import UNTIL, cut_at_stop, extract_flexible, number_correct

MAX_NEW_TOKENS = 256  # lm-eval's default max_gen_toks
BATCH = 16
SERVER_CONCURRENCY = 8
Progress = Callable[[str], None]


def _scored(question: Question, response: str) -> QuestionResult:
    if question.kind == GSM8K:
        response = cut_at_stop(response)
        answer = extract_flexible(response)
        return QuestionResult(question.id, response, answer, number_correct(answer, question.gold))
    return QuestionResult(question.id, response, response, response == question.gold)


def _chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[start:start + size] for start in range(0, len(items), size)]


def ask_model(model: Any, tokenizer: Any, evalset: EvalSet, questions: Sequence[Question], *,
              max_new_tokens: int = MAX_NEW_TOKENS, batch: int = BATCH,
              progress: Progress = lambda _: None) -> list[QuestionResult]:
    """Every question of `questions` (from `evalset`) asked of the model in process."""
    results: list[QuestionResult] = []
    for number, chunk in enumerate(_chunks(questions, batch)):
        if evalset.kind == GSM8K:
            responses = _generate(model, tokenizer, [evalset.prompt(q) for q in chunk],
                                  max_new_tokens)
        else:
            responses = [_likeliest_choice(model, tokenizer, evalset.prompt(q), q.letters)
                         for q in chunk]
        results += [_scored(q, r) for q, r in zip(chunk, responses)]
        progress(f"eval {evalset.name}: {len(results)} of {len(questions)} questions, "
                 f"{sum(r.correct for r in results)} right so far")
    return results


def _generate(model: Any, tokenizer: Any, prompts: list[str], max_new_tokens: int) -> list[str]:
    from transformers import GenerationConfig

    inputs = tokenizer(prompts, return_tensors="pt", padding=True)
    inputs = {key: value.to(model.device) for key, value in inputs.items()}
    config = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False,
                              pad_token_id=tokenizer.pad_token_id,
                              eos_token_id=model.generation_config.eos_token_id,
                              stop_strings=list(UNTIL))
    with torch.inference_mode():
        out = model.generate(**inputs, generation_config=config, tokenizer=tokenizer)
    new = out[:, inputs["input_ids"].shape[1]:]
    return tokenizer.batch_decode(new, skip_special_tokens=True)


def continuation_ids(tokenizer: Any, prompt: str, continuation: str) -> tuple[list, list]:
    """The prompt's ids and the continuation's, tokenized apart (as lm-eval does, so that a
    merge across the boundary cannot change what is scored)."""
    return (tokenizer(prompt, add_special_tokens=False)["input_ids"],
            tokenizer(continuation, add_special_tokens=False)["input_ids"])


def _likeliest_choice(model: Any, tokenizer: Any, prompt: str, letters: Sequence[str]) -> str:
    """The letter whose ` X` continuation is likeliest: one batch of prompt + continuation,
    right-padded, each continuation's log-probabilities summed."""
    pairs = [continuation_ids(tokenizer, prompt, f" {letter}") for letter in letters]
    sequences = [p + c for p, c in pairs]
    width = max(len(s) for s in sequences)
    pad = tokenizer.pad_token_id or 0
    ids = torch.tensor([s + [pad] * (width - len(s)) for s in sequences], device=model.device)
    mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in sequences],
                        device=model.device)
    with torch.inference_mode():
        logprobs = torch.log_softmax(model(input_ids=ids, attention_mask=mask).logits.float(),
                                     dim=-1)
    scores = []
    for row, (prompt_ids, cont) in enumerate(pairs):
        positions = range(len(prompt_ids) - 1, len(prompt_ids) + len(cont) - 1)
        scores.append(sum(float(logprobs[row, at, token]) for at, token in zip(positions, cont)))
    return letters[max(range(len(letters)), key=lambda i: scores[i])]


def ask_server(client: Any, tokenizer: Any, evalset: EvalSet, questions: Sequence[Question], *,
               max_new_tokens: int = MAX_NEW_TOKENS, concurrency: int = SERVER_CONCURRENCY,
               progress: Progress = lambda _: None) -> list[QuestionResult]:
    """Every question asked of an SGLang server (an SGLangClient), a few at a time."""

    def ask(question: Question) -> QuestionResult:
        prompt = evalset.prompt(question)
        if evalset.kind == GSM8K:
            reply = client.generate(prompt, max_new_tokens, stop=list(UNTIL))
            return _scored(question, reply["text"])
        scores = [client.continuation_logprob(*continuation_ids(tokenizer, prompt, f" {x}"))
                  for x in question.letters]
        return _scored(question, question.letters[max(range(len(scores)),
                                                       key=lambda i: scores[i])])

    results: list[QuestionResult] = []
    with ThreadPoolExecutor(concurrency) as pool:
        for result in pool.map(ask, questions):
            results.append(result)
            if len(results) % BATCH == 0 or len(results) == len(questions):
                progress(f"eval {evalset.name} on the server: {len(results)} of "
                         f"{len(questions)} questions")
    return results
