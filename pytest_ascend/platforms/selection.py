"""Which cards of a box a session tests: `--ascend-devices {all | N | i,j,...}`.

The spelling is checked when the options are read (nothing is imported then); the indices
are checked against the cards the runtime shows once the platform is known, so a wrong index
is one line that names the visible count and the variable that hides the others.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from pytest_ascend.platforms.base import DeviceUnavailable

if TYPE_CHECKING:
    from pytest_ascend.platforms.base import Platform

ALL = "all"


@dataclass(frozen=True)
class CardSelection:
    """`all` cards, the first `count`, or the listed `indices` (in the order given)."""

    text: str
    count: Optional[int] = None
    indices: Optional[tuple[int, ...]] = None

    @property
    def everything(self) -> bool:
        return self.count is None and self.indices is None

    def resolve(self, platform: "Platform") -> tuple[int, ...]:
        """The indices this selection names among `platform`'s visible cards (on a platform
        whose one device stands in for several, any number of stand-ins)."""
        visible = platform.device_count()
        if platform.host_stand_ins and not self.everything:
            highest = max(self.indices) if self.indices else (self.count or 1) - 1
            visible = max(visible, highest + 1)
        if self.everything:
            wanted: tuple[int, ...] = tuple(range(visible))
        elif self.indices is not None:
            wanted = self.indices
        else:
            wanted = tuple(range(self.count or 0))
        missing = [i for i in wanted if i >= visible]
        if missing or not wanted:
            hidden = platform.visible_devices_env
            hint = (f"; {hidden} hides or reorders cards (it is "
                    f"{_env_shown(hidden)})" if hidden else "")
            what = (f"card {missing[0]} does not exist" if self.indices is not None
                    else f"{self.count} cards were asked for")
            raise DeviceUnavailable(
                f"--ascend-devices {self.text}: {what}, {visible} {platform.kind} card"
                f"{'' if visible == 1 else 's'} visible (indices 0-{max(visible - 1, 0)})"
                f"{hint}")
        return wanted


def _env_shown(name: str) -> str:
    value = os.environ.get(name)
    return "unset" if value is None else f"{value!r}"


def parse_card_selection(text: str) -> CardSelection:
    """`all`, a count `N` (the first N cards), or indices `i,j,...` (a single index as `i,`);
    raises ValueError with the reason."""
    spec = text.strip().lower()
    if spec == ALL:
        return CardSelection(ALL)
    if "," not in spec:
        if not spec.isdigit() or int(spec) < 1:
            raise ValueError("use all, a number of cards (2: the first two), or card "
                             "indices such as 0,1,3 (one card: 3,)")
        return CardSelection(spec, count=int(spec))
    parts = [p.strip() for p in spec.split(",") if p.strip()]
    if not parts or not all(p.isdigit() for p in parts):
        raise ValueError("card indices are non-negative integers separated by commas, "
                         "such as 0,1,3")
    indices = tuple(int(p) for p in parts)
    repeated = sorted({i for i in indices if indices.count(i) > 1})
    if repeated:
        raise ValueError(f"card {repeated[0]} is listed twice")
    return CardSelection(spec, indices=indices)
