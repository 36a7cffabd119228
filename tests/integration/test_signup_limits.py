"""The signup limiter's per-IP count on the event loop and off it: one count, one window."""

from __future__ import annotations

import anyio

from drip.signup.limits import SignupLimiter, Verdict
from tests.integration.conftest import REDIS_URL


def test_the_ip_count_is_shared_by_the_thread_and_the_event_loop(redis_namespace: str) -> None:
    limiter = SignupLimiter(
        REDIS_URL, namespace=redis_namespace, per_ip="2/minute", per_address="9/minute"
    )
    # Given one signup counted off the event loop and one on it
    assert limiter.check_ip("198.51.100.1") == Verdict(True)
    assert anyio.run(limiter.check_ip_async, "198.51.100.1") == Verdict(True)
    # When a third comes, on a new event loop, then it is refused until the window ends
    refused = anyio.run(limiter.check_ip_async, "198.51.100.1")
    assert not refused.allowed
    assert 1 <= refused.retry_after <= 61
    assert not limiter.check_ip("198.51.100.1").allowed
    # And another address is counted apart
    assert anyio.run(limiter.check_ip_async, "198.51.100.2") == Verdict(True)


def test_the_ip_count_lets_signups_through_when_redis_is_down() -> None:
    limiter = SignupLimiter(
        "redis://127.0.0.1:1/0", namespace="nowhere", per_ip="1/minute", per_address="1/minute"
    )
    assert anyio.run(limiter.check_ip_async, "198.51.100.1") == Verdict(True)
    assert anyio.run(limiter.check_ip_async, "198.51.100.1") == Verdict(True)
