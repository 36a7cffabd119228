"""Sending at a configured rate across every worker, and pausing them all after a 429.

`DRIP_SEND_RATE` emails per second are shared through a Redis counter per one-second
window: a worker over the limit waits for the next window. When the provider answers
429, the reset time is stored in Redis and every worker holds its sends until then,
instead of each one discovering the limit with a 429 of its own.
"""

from __future__ import annotations

import math
import time
from typing import Any

import redis
import structlog

from drip.errors import Throttled

log = structlog.get_logger(__name__)

#: A pause longer than this is handed back to Dramatiq as a retry instead of holding a thread.
MAX_INLINE_WAIT = 2.0


class SendThrottle:
    """One send rate and one provider pause for every worker, counted in Redis."""

    def __init__(self, redis_url: str, *, namespace: str, rate: float) -> None:
        self._client: Any = redis.Redis.from_url(
            redis_url, socket_timeout=2, socket_connect_timeout=2
        )
        self._prefix = f"{namespace}:send-rate"
        self._per_window = max(1, math.floor(rate))

    def acquire(self, *, deadline: float | None = None) -> None:
        """Wait for a slot in the shared rate; raise Throttled during a long pause, or when
        the wait would pass `deadline` (a `time.monotonic()` time)."""
        while True:
            paused = float(self._client.get(f"{self._prefix}:paused-until") or 0)
            now = time.time()
            if paused > now:
                if paused - now > MAX_INLINE_WAIT:
                    raise Throttled(
                        "the provider asked all senders to wait", retry_after=paused - now
                    )
                self._wait(paused - now, deadline)
                continue
            window = int(now)
            key = f"{self._prefix}:{window}"
            pipe = self._client.pipeline()
            pipe.incr(key)
            pipe.expire(key, 3)
            count = pipe.execute()[0]
            if count <= self._per_window:
                return
            self._wait(window + 1 - now, deadline)

    @staticmethod
    def _wait(seconds: float, deadline: float | None) -> None:
        if deadline is not None and time.monotonic() + seconds > deadline:
            raise Throttled(
                "not sent: the shared send rate has no slot before the batch's time ran out"
            )
        time.sleep(seconds)

    def pause(self, seconds: float) -> None:
        """Hold every worker's sends for `seconds` (after a 429 with a reset time)."""
        until = time.time() + seconds
        self._client.set(f"{self._prefix}:paused-until", str(until), px=max(1, int(seconds * 1000)))
        log.info("send.paused_by_provider", seconds=round(seconds, 3))
