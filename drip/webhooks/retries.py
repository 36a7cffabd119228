"""When a failed webhook is tried again: exponential backoff with full jitter, for three days.

Attempt n (1 for the first failure) waits a random time between half and all of
`min(base * 2**(n-1), cap)`: receivers that fell over together are not hit together when
they come back. After `window` from the time the event was due, a failure is final.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

#: How long an event is retried before it is kept as failed.
RETRY_WINDOW = timedelta(days=3)

#: The first retry's wait, and the longest wait between two attempts.
BASE_DELAY = timedelta(seconds=10)
MAX_DELAY = timedelta(hours=6)

#: The jitter's source, unless a caller passes its own (a test, for repeatable draws).
_RNG = random.Random()


@dataclass(frozen=True)
class RetryPolicy:
    """How failed attempts are spaced, and for how long."""

    base: timedelta = BASE_DELAY
    cap: timedelta = MAX_DELAY
    window: timedelta = RETRY_WINDOW


def compute_backoff(
    attempts: int, policy: RetryPolicy, *, rng: random.Random | None = None
) -> timedelta:
    """The wait after the `attempts`-th failed attempt (1-based), jittered."""
    exponent = min(max(attempts - 1, 0), 40)  # 2**40 times any base is past any cap
    ceiling = min(policy.base * (1 << exponent), policy.cap)
    return ceiling * (rng or _RNG).uniform(0.5, 1.0)


def next_attempt(
    attempts: int, *, now: datetime, give_up_at: datetime, policy: RetryPolicy
) -> datetime | None:
    """When to try again after the `attempts`-th failure, or None when the window is over."""
    if now >= give_up_at:
        return None
    return now + compute_backoff(attempts, policy)
