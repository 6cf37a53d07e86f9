"""The soak's per-card table, as the terminal shows it at the end."""

from __future__ import annotations

from typing import Optional

from pytest_ascend.soak.runner import CardSoak, SoakResult

_RATE_SCALE = {"decode": 1.0, "matmul": 1e-12}
_RATE_NAME = {"decode": "decode tok/s", "matmul": "matmul TFLOP/s"}


def _number(value: Optional[float], form: str) -> str:
    return "-" if value is None else format(value, form)


def _gauge(card: CardSoak, gauge: str, stat: str) -> Optional[float]:
    summary = (card.telemetry or {}).get(gauge)
    return None if not summary else summary.get(stat)


def soak_table(result: SoakResult) -> list[str]:
    """One header and one row per card: what it did, its rate against its first window and
    its siblings, its mismatches, its power and temperature, and its verdict."""
    workload = result.rate_workload
    scale = _RATE_SCALE.get(workload or "", 1.0)
    rate_name = _RATE_NAME.get(workload or "", "rate")
    header = ("card", "chip", "iterations", rate_name, "first window", "worst drift",
              "vs siblings", "mismatches", "power W", "max temp C", "verdict")
    rows = []
    for card in result.cards:
        stability = card.stability
        mismatches = sum(1 for m in result.mismatches if m.card == card.card)
        verdict = ("FAILED" if mismatches or card.exit_error
                   else "flagged" if stability and stability.flags else "ok")
        rows.append((
            str(card.card), card.name[:24], str(card.iterations),
            _number(stability.median_rate * scale if stability and stability.median_rate
                    else None, ".4g"),
            _number(stability.baseline * scale if stability and stability.baseline
                    else None, ".4g"),
            _number(stability.worst_drift if stability else None, "+.1%"),
            _number(-stability.below_siblings if stability and
                    stability.below_siblings is not None else None, "+.1%"),
            str(mismatches), _number(_gauge(card, "power_w", "median"), ".0f"),
            _number(_gauge(card, "temperature_c", "max"), ".0f"), verdict))
    widths = [max(len(header[i]), *(len(row[i]) for row in rows)) for i in range(len(header))]
    return ["  ".join(cell.rjust(width) for cell, width in zip(line, widths))
            for line in (header, *rows)]
