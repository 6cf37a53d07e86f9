"""The shipped eval set: arithmetic word problems in GSM8K's format, made by a seeded generator,
so that the accuracy mechanism runs on the tiny model with no dataset fetched. On the tiny
model its accuracy means nothing; it exercises recording, pairing and the gate.

    python -m pytest_ascend.accuracy.generate --count 300 --seed 0 > arithmetic.jsonl
    python -m pytest_ascend.accuracy.generate --choices --count 50 > arithmetic-mc.jsonl

`tests/plugin/test_accuracy.py` checks that the shipped file is exactly this generator's
output, and that every answer is right.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from typing import Iterator, Optional

SHIPPED_COUNT, SHIPPED_SEED, FEWSHOT = 300, 0, 3
NAMES = ("Lena", "Tomas", "Mei", "Arjun", "Sofia", "Kwame", "Ines", "Hiro", "Olga", "Yusuf")
ITEMS = ("apples", "pencils", "stickers", "marbles", "books", "cards", "shells", "coins")


def _problem(rng: random.Random) -> tuple[str, str, int]:
    """(question, worked answer, final number) of one two-step problem."""
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    kind = rng.randrange(4)
    if kind == 0:
        a, b, c = rng.randint(5, 60), rng.randint(2, 40), rng.randint(1, 20)
        result = a + b - c
        question = (f"{name} has {a} {item}. {name} gets {b} more and then gives away {c}. "
                    f"How many {item} does {name} have now?")
        worked = f"{name} has {a} + {b} = {a + b} {item}, then {a + b} - {c} = {result}."
    elif kind == 1:
        boxes, per, extra = rng.randint(2, 12), rng.randint(3, 15), rng.randint(1, 30)
        result = boxes * per + extra
        question = (f"There are {boxes} boxes with {per} {item} in each box, and {extra} "
                    f"loose {item}. How many {item} are there in all?")
        worked = (f"The boxes hold {boxes} * {per} = {boxes * per} {item}, and "
                  f"{boxes * per} + {extra} = {result}.")
    elif kind == 2:
        friends, each = rng.randint(2, 9), rng.randint(2, 12)
        left = rng.randint(0, friends - 1)
        total = friends * each + left
        result = each
        question = (f"{name} shares {total} {item} equally among {friends} friends and keeps "
                    f"the {left} left over. How many {item} does each friend get?")
        worked = (f"{total} - {left} = {total - left} {item} are shared, and "
                  f"{total - left} / {friends} = {result}.")
    else:
        price, count = rng.randint(2, 9), rng.randint(2, 8)
        paid = price * count + rng.randint(1, 20)
        result = paid - price * count
        question = (f"{name} buys {count} {item} at {price} dollars each and pays with "
                    f"{paid} dollars. How much change does {name} get, in dollars?")
        worked = (f"The {item} cost {count} * {price} = {count * price} dollars, and "
                  f"{paid} - {count * price} = {result}.")
    return question, f"{worked}\n#### {result}", result


def arithmetic_lines(count: int = SHIPPED_COUNT, seed: int = SHIPPED_SEED,
                     choices: bool = False, fewshot: int = FEWSHOT) -> Iterator[dict]:
    """The set's lines: `fewshot` examples first, then `count` questions; with `choices`,
    as four-way multiple choice (the answer among three near misses)."""
    rng = random.Random(seed)
    for index in range(fewshot + count):
        question, worked, result = _problem(rng)
        line: dict = {"id": f"arith-{seed}-{index}", "question": question}
        if choices:
            options = [result, result + rng.randint(1, 5), result - rng.randint(1, 5),
                       result + rng.randint(6, 15)]
            rng.shuffle(options)
            line.update(choices=[str(option) for option in options],
                        answer="ABCD"[options.index(result)])
        else:
            line["answer"] = worked
        if index < fewshot:
            line["fewshot"] = True
        yield line


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pytest_ascend.accuracy.generate")
    parser.add_argument("--count", type=int, default=SHIPPED_COUNT)
    parser.add_argument("--seed", type=int, default=SHIPPED_SEED)
    parser.add_argument("--fewshot", type=int, default=FEWSHOT)
    parser.add_argument("--choices", action="store_true", help="multiple choice")
    args = parser.parse_args(argv)
    for line in arithmetic_lines(args.count, args.seed, args.choices, args.fewshot):
        sys.stdout.write(json.dumps(line, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
