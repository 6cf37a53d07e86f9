"""The one reader of numbers a user types, for the plugin's options and the command alike.

Both once had their own: the command took "10%" for a fraction, the plugin refused it. Each
reader raises ValueError with what was expected, for the caller to prefix with where the
value came from.
"""

from __future__ import annotations


def _float(text: str) -> float:
    """A number, where "10%" is 0.1."""
    text = str(text).strip()
    try:
        if text.endswith("%"):
            return float(text[:-1]) / 100
        return float(text)
    except ValueError:
        return float("nan")


def fraction(text: str) -> float:
    """Strictly between 0 and 1: 0.1 or 10%."""
    value = _float(text)
    if not 0 < value < 1:
        raise ValueError("not a fraction between 0 and 1 (0.1, or 10%)")
    return value


def non_negative(text: str) -> float:
    """0 or more: 0.15 or 15%."""
    value = _float(text)
    if not value >= 0:
        raise ValueError("not a number of 0 or more (0.15, or 15%)")
    return value


def positive_factor(text: str) -> float:
    value = _float(text)
    if not value > 0:
        raise ValueError("not a positive factor (2 doubles every bound)")
    return value


def count(text: str) -> int:
    try:
        value = int(str(text).strip())
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError("not a positive whole number")
    return value
