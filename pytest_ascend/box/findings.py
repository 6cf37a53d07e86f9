"""What a box run found, kept for the session's closing tables."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from pytest_ascend.box.render import card_table, link_table
from pytest_ascend.box.sweep import CardSweep, LinkMatrix, link_label


@dataclass
class BoxFindings:
    sweep: Optional[CardSweep] = None
    links: Optional[LinkMatrix] = None
    slow_cards: list = field(default_factory=list)  # Straggler
    slow_links: list = field(default_factory=list)  # Straggler

    def tables(self) -> list[tuple[str, list[str]]]:
        """(title, lines) of each table there is something to show in."""
        shown = []
        if self.sweep is not None:
            flagged = {(s.member, s.metric) for s in self.slow_cards}
            shown.append((f"cards x metrics (best of {self.sweep.rounds} interleaved rounds; "
                          f"! below its siblings)", card_table(self.sweep, flagged)))
        if self.links is not None:
            slow = {s.member for s in self.slow_links}
            flagged = {pair for pair in self.links.gb_s if link_label(*pair) in slow}
            shown.append((f"links, GB/s (row -> column, {self.links.nbytes >> 20} MiB copies; "
                          f"! below its siblings)", link_table(self.links, flagged)))
        return shown
