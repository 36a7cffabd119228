"""Delays such as `0s`, `45m`, `2d` and `1d12h`: a sum of whole numbers with units s, m, h, d, w."""

from __future__ import annotations

import re
from datetime import timedelta

from drip.errors import DelayError

#: Seconds in one of each unit a delay may use.
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

#: The longest delay accepted: anything longer is surely a typo.
MAX_DELAY = timedelta(days=3650)

_PART = re.compile(r"(\d+)\s*([smhdw])")
_WHOLE = re.compile(r"\s*(?:\d+\s*[smhdw]\s*)+")


def parse_delay(text: object) -> timedelta:
    """Parse a delay string into a timedelta; raise DelayError naming what is wrong."""
    if not isinstance(text, str):
        raise DelayError(f"a delay is a string such as '2d' or '1d12h', not {text!r}")
    if not _WHOLE.fullmatch(text):
        raise DelayError(
            f"{text!r} is not a delay: use whole numbers with s, m, h, d or w,"
            " such as '45m' or '1d12h'"
        )
    seconds = sum(int(number) * UNIT_SECONDS[unit] for number, unit in _PART.findall(text))
    if seconds > MAX_DELAY.total_seconds():
        raise DelayError(f"{text!r} is longer than {MAX_DELAY.days} days")
    return timedelta(seconds=seconds)


def format_delay(delay: timedelta) -> str:
    """The shortest delay string for `delay`, e.g. `1d12h`."""
    seconds = int(delay.total_seconds())
    if seconds == 0:
        return "0s"
    parts = []
    for unit in ("w", "d", "h", "m", "s"):
        count, seconds = divmod(seconds, UNIT_SECONDS[unit])
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
