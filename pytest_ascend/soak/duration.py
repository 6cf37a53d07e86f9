"""How long a soak runs: a duration (`90s`, `15m`, `4h`, plain seconds) or a named level, as
DCGM's run levels name theirs (`dcgmi diag -r 1..4`: seconds to about an hour)."""

from __future__ import annotations

import re

LEVELS = {"quick": 120.0, "standard": 900.0, "long": 4 * 3600.0}
_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_soak_duration(text: str) -> float:
    """Seconds of soak for `text`; raises ValueError saying what is accepted."""
    spec = str(text).strip().lower()
    if spec in LEVELS:
        return LEVELS[spec]
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smh]?)", spec)
    if not match or float(match.group(1)) <= 0:
        levels = ", ".join(f"{name} ({describe_seconds(seconds)})"
                           for name, seconds in LEVELS.items())
        raise ValueError(f"use a duration such as 90s, 15m or 4h, or a level: {levels}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def describe_seconds(seconds: float) -> str:
    """`4h`, `15m`, `90s`, `1h30m`: how a duration reads back."""
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours}h" if hours else "", f"{minutes}m" if minutes else "",
             f"{secs}s" if secs or not whole else ""]
    return "".join(parts)
