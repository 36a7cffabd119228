"""Leases: how long a row in `queued` or `sending` is left to its holder before recovery."""

from __future__ import annotations

from datetime import datetime, timedelta


def lease(now: datetime, seconds: float) -> datetime:
    """The end of a lease of `seconds` taken at `now`."""
    return now + timedelta(seconds=seconds)
