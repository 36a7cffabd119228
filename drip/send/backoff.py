"""How long to wait before the next attempt at a transient send failure."""

from __future__ import annotations

import random


def compute_backoff(
    attempt: int, *, minimum: float, maximum: float, retry_after: float | None = None
) -> float:
    """Seconds before the next attempt: the provider's hint, else exponential with jitter."""
    if retry_after is not None and retry_after > 0:
        return min(retry_after, maximum)
    ceiling = min(maximum, minimum * 2 ** max(attempt - 1, 0))
    return random.uniform(ceiling / 2, ceiling)
