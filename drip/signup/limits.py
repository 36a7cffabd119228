"""Signup rate limits per client IP and per address, kept in Redis (the `limits` library).

If Redis is unreachable the limiter lets the signup through: a lost signup is worse
than an unthrottled one, and the database keeps everything accepted.

The per-IP count is also offered as a coroutine (`check_ip_async`), for the API to count
it on its event loop before reading the body rather than hop to a thread and back for
one Redis call. Both forms use the same library, keys and windows: they count alike.
An asyncio Redis client belongs to the loop it was made on, so there is one per loop.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from dataclasses import dataclass
from typing import Any

import structlog
from limits import RateLimitItem, parse
from limits.aio.storage import RedisStorage as AsyncRedisStorage
from limits.aio.strategies import FixedWindowRateLimiter as AsyncFixedWindowRateLimiter
from limits.storage import RedisStorage
from limits.strategies import FixedWindowRateLimiter

log = structlog.get_logger(__name__)


def limits_uri(redis_url: str) -> str:
    """The `limits` storage URI for a redis-py URL (`unix://` becomes `redis+unix://`)."""
    return "redis+" + redis_url if redis_url.startswith("unix://") else redis_url


@dataclass(frozen=True)
class Verdict:
    """Whether a signup may go ahead, and else how many seconds until it may."""

    allowed: bool
    retry_after: int = 0


class SignupLimiter:
    """Signups counted per IP and per address in Redis; fails open when Redis is down."""

    def __init__(self, redis_url: str, *, namespace: str, per_ip: str, per_address: str) -> None:
        self._uri = limits_uri(redis_url)
        self._options: dict[str, Any] = {
            "key_prefix": f"{namespace}:limits",
            "wrap_exceptions": True,
            "socket_timeout": 1,
            "socket_connect_timeout": 1,
        }
        self._limiter = FixedWindowRateLimiter(RedisStorage(self._uri, **self._options))
        self._per_loop: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, AsyncFixedWindowRateLimiter
        ] = weakref.WeakKeyDictionary()
        self._per_ip = parse(per_ip)
        self._per_address = parse(per_address)

    def check_ip(self, ip: str) -> Verdict:
        """Count one signup from `ip`."""
        return self._hit(self._per_ip, "ip", ip)

    async def check_ip_async(self, ip: str) -> Verdict:
        """`check_ip` on the running event loop."""
        loop = asyncio.get_running_loop()
        limiter = self._per_loop.get(loop)
        if limiter is None:
            storage = AsyncRedisStorage(
                "async+" + self._uri, implementation="redispy", **self._options
            )
            limiter = self._per_loop[loop] = AsyncFixedWindowRateLimiter(storage)
        try:
            if await limiter.hit(self._per_ip, "signup", "ip", ip):
                return Verdict(True)
            reset = (await limiter.get_window_stats(self._per_ip, "signup", "ip", ip)).reset_time
            return _refused(reset)
        except Exception as exc:
            log.warning("signup.limiter_unavailable", error=str(exc))
            return Verdict(True)

    def check_address(self, email_hash: str) -> Verdict:
        """Count one signup for an address (by its hash: no address is stored in Redis)."""
        return self._hit(self._per_address, "address", email_hash)

    def _hit(self, item: RateLimitItem, kind: str, key: str) -> Verdict:
        try:
            if self._limiter.hit(item, "signup", kind, key):
                return Verdict(True)
            reset = self._limiter.get_window_stats(item, "signup", kind, key).reset_time
            return _refused(reset)
        except Exception as exc:
            log.warning("signup.limiter_unavailable", error=str(exc))
            return Verdict(True)


def _refused(reset: float) -> Verdict:
    """Refused until the window that ends at `reset` (Unix time) has ended."""
    return Verdict(False, max(1, int(reset - time.time()) + 1))
