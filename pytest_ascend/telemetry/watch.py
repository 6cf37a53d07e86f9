"""The session's watch over its cards: one sampler for all of them from the first suite test
to the end, each test's region summarised beside its results, and the health gate read
before and after. It knows nothing of pytest; the session owner calls it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional, Sequence

from pytest_ascend.telemetry.health import CardHealth, HealthVerdict, judge_health
from pytest_ascend.telemetry.reading import TelemetryReader
from pytest_ascend.telemetry.region import energy_per_token_j, region_report
from pytest_ascend.telemetry.sampler import TelemetrySampler


class CardWatch:
    def __init__(self, readers: Sequence[TelemetryReader], interval_s: float) -> None:
        self.readers = list(readers)
        self.interval_s = interval_s
        self.before = {reader.card: CardHealth.read(reader) for reader in self.readers}
        self.sampler = TelemetrySampler(self.readers, interval_s).start()
        self.started_s = time.perf_counter()
        self.regions: list[tuple[str, float, float]] = []  # (test, start, end) in order

    def header_lines(self) -> list[str]:
        """What the header says of telemetry: the interval, and per card what is null."""
        lines = [f"telemetry every {self.interval_s:g} s on {len(self.readers)} card(s)"]
        return lines + [line for line in (r.unreadable_line() for r in self.readers) if line]

    def begin(self) -> float:
        """The region's start, then a reading of every card: the reading falls inside."""
        start_s = time.perf_counter()
        self.sampler.mark()
        return start_s

    def end(self, test: str, start_s: float, metrics: Optional[dict] = None) -> dict:
        """The region's figures for each card (the first card's at the top level, as the
        model runs there), with energy per token where `metrics` holds a decode's TPOT."""
        self.sampler.mark()
        end_s = time.perf_counter()
        self.regions.append((test, start_s, end_s))
        reports = [region_report(self.sampler.readings(r.card), start_s, end_s) | {
            "card": r.card} for r in self.readers]
        telemetry = dict(reports[0])
        if len(reports) > 1:
            telemetry["cards"] = reports
        metrics = metrics or {}
        power = (telemetry.get("power_w") or {}).get("median")
        per_token = energy_per_token_j(power, metrics.get("tpot_ms"),
                                       int(metrics.get("batch_size") or 1))
        if per_token is not None:
            telemetry["energy_per_token_j"] = per_token
        return telemetry

    def finish(self) -> HealthVerdict:
        """Stop sampling and judge every card's health against the session's start."""
        self.sampler.stop()
        after = {reader.card: CardHealth.read(reader) for reader in self.readers}
        return judge_health(self.before, after)

    def write_plot(self, path: Path) -> Path:
        """Every card's readings over the session, the tests marked (telemetry/plot.py)."""
        from pytest_ascend.telemetry.plot import write_telemetry_plot

        readings = {card: self.sampler.readings(card) for card in self.sampler.cards()}
        return write_telemetry_plot(readings, self.regions, self.started_s, path)
