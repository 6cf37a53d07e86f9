"""The health gate: each card read before the session and after it. A card that vanished, a
new uncorrectable ECC error or a worse health state fails the session, naming the card;
new correctable errors and retired pages are reported. A card already unhealthy at the start
is reported too: the gate judges what the session saw happen."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional

from pytest_ascend.telemetry.reading import HEALTH_STATES, TelemetryReader


@dataclass(frozen=True)
class CardHealth:
    card: str
    present: Optional[bool]  # None: the platform cannot tell
    health: Optional[str]
    ecc_corrected: Optional[int]
    ecc_uncorrected: Optional[int]
    retired_pages: Optional[int]

    @classmethod
    def read(cls, reader: TelemetryReader) -> "CardHealth":
        present = None
        if reader.present is not None:
            try:
                present = bool(reader.present())
            except Exception:  # noqa: BLE001  (a driver that cannot list the card)
                present = False
        if present is False:
            return cls(reader.card, False, None, None, None, None)
        reading = reader.read()
        return cls(reader.card, present, reading.health, reading.ecc_corrected,
                   reading.ecc_uncorrected, reading.retired_pages)


@dataclass(frozen=True)
class HealthVerdict:
    failures: list[str]  # each fails the session
    notes: list[str]  # each is reported

    @property
    def failed(self) -> bool:
        return bool(self.failures)


def _rank(state: Optional[str]) -> Optional[int]:
    """Higher is worse; a state the table does not know ranks worst (it is not OK)."""
    if state is None:
        return None
    return HEALTH_STATES.index(state) if state in HEALTH_STATES else len(HEALTH_STATES)


def _rise(before: Optional[int], after: Optional[int]) -> int:
    return after - before if before is not None and after is not None else 0


def judge_health(before: Mapping[str, CardHealth], after: Mapping[str, CardHealth]
                 ) -> HealthVerdict:
    failures: list[str] = []
    notes: list[str] = []
    for card, start in before.items():
        end = after.get(card)
        if end is None or (start.present is not False and end.present is False):
            failures.append(f"{card} vanished during the session: its driver no longer "
                            f"lists it")
            continue
        if start.health is not None and _rank(start.health) != 0:
            notes.append(f"{card} was already {start.health} before the session")
        if _rank(end.health) is not None and _rank(start.health) is not None \
                and _rank(end.health) > _rank(start.health):  # type: ignore[operator]
            failures.append(f"{card} health went from {start.health} to {end.health} during "
                            f"the session")
        new_uncorrected = _rise(start.ecc_uncorrected, end.ecc_uncorrected)
        if new_uncorrected > 0:
            failures.append(f"{card}: {new_uncorrected} new uncorrectable ECC error(s) during "
                            f"the session ({start.ecc_uncorrected} -> {end.ecc_uncorrected}): "
                            f"its results may be wrong")
        new_corrected = _rise(start.ecc_corrected, end.ecc_corrected)
        if new_corrected > 0:
            notes.append(f"{card}: {new_corrected} new correctable ECC error(s) during the "
                         f"session ({start.ecc_corrected} -> {end.ecc_corrected})")
        new_pages = _rise(start.retired_pages, end.retired_pages)
        if new_pages > 0:
            notes.append(f"{card}: {new_pages} memory page(s) retired during the session "
                         f"({start.retired_pages} -> {end.retired_pages})")
    return HealthVerdict(failures, notes)
