"""Accuracy on a real eval set, compared question by question across stacks.

An operator ships on whether the model still answers correctly. The same questions are asked
on both stacks, so the comparison is paired: `paired.py` judges it with an exact McNemar
test on the questions whose correctness changed. `evalset.py` reads GSM8K-style and
multiple-choice JSONL files and builds lm-eval's prompts; `scoring.py` extracts and scores
answers as lm-eval's gsm8k and mmlu tasks do; `answering.py` asks the session's model or an
SGLang server; `records.py` keeps per-question answers next to the token goldens, keyed by
the stack; `generate.py` makes the shipped arithmetic set.
"""
