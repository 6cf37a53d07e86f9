"""Bit-for-bit agreement: every iteration of a workload on a card must equal that card's
first, and every card's first must equal its siblings' (the first card of the same chip to
report it), for the same inputs. A result wrong against what is known to be right (a
pattern word, a float64 reference) is a mismatch of its own, and never becomes a reference.

Fed the workers' `iteration` records in any order of cards; pure, and fast to test.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional


@dataclass(frozen=True)
class Mismatch:
    card: int
    iteration: int
    workload: str
    against: str  # what it was held to
    where: str  # the first differing step, row or element, or the fault

    def describe(self) -> str:
        return (f"card {self.card}, iteration {self.iteration}, {self.workload}: differs from "
                f"{self.against} at {self.where}")


def first_differing_part(parts: Optional[list], reference: Optional[list], unit: str) -> str:
    """`unit i`, the first part whose digest differs; what is known when parts are missing."""
    if not parts or not reference:
        return "an unknown place (no per-part digests)"
    for index, (mine, theirs) in enumerate(zip(parts, reference)):
        if mine != theirs:
            return f"{unit} {index}"
    return f"{unit} {min(len(parts), len(reference))} (one has {abs(len(parts) - len(reference))} more)"


class AgreementCheck:
    """`add` each iteration record; it returns the mismatches that record shows."""

    def __init__(self, chips: Mapping[int, str]) -> None:
        self.chips = dict(chips)  # every card -> its chip's name: siblings share one
        self.own_first: dict[tuple[int, str], dict] = {}
        self.chip_first: dict[tuple[str, str], dict] = {}
        self.mismatches: list[Mismatch] = []

    def add(self, record: Mapping) -> list[Mismatch]:
        card, workload, iteration = record["card"], record["workload"], record["iteration"]
        found = []
        if record.get("fault"):  # named already; never anyone's reference
            found.append(Mismatch(card, iteration, workload, "the values known to be right",
                                  str(record["fault"])))
            self.mismatches.extend(found)
            return found
        first = self.own_first.get((card, workload))
        if first is None:
            self.own_first[(card, workload)] = dict(record)
            found.extend(self._against_siblings(record))
        elif record["digest"] != first["digest"]:
            where = record.get("difference") or first_differing_part(
                record.get("parts"), first.get("parts"), record["unit"])
            found.append(Mismatch(card, iteration, workload,
                                  f"its own iteration {first['iteration']}", where))
        self.mismatches.extend(found)
        return found

    def _against_siblings(self, record: Mapping) -> list[Mismatch]:
        chip = self.chips[record["card"]]
        key = (chip, record["workload"])
        sibling = self.chip_first.setdefault(key, dict(record))
        if sibling["card"] == record["card"] or sibling["digest"] == record["digest"]:
            return []
        where = first_differing_part(record.get("parts"), sibling.get("parts"), record["unit"])
        return [Mismatch(record["card"], record["iteration"], record["workload"],
                         f"card {sibling['card']} (the same chip, {chip})", where)]
