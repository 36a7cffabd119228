"""The shared send rate (real Redis) never holds an email past its batch's send window: a
wait for the next slot that would end after the deadline is refused at once as Throttled
(not sent, no attempt spent), instead of keeping the batch, and its contacts' locks, open."""

from __future__ import annotations

import time

import pytest

from drip.errors import Throttled
from drip.send.throttle import SendThrottle
from tests.integration.conftest import REDIS_URL


def test_a_wait_past_the_deadline_is_refused_at_once(redis_namespace: str) -> None:
    # Given a shared rate of one email a second
    throttle = SendThrottle(REDIS_URL, namespace=redis_namespace, rate=1)
    started = time.monotonic()

    def three_with_no_time_left() -> None:
        for _ in range(3):  # the first takes this second's slot (a second, the next one's)
            throttle.acquire(deadline=time.monotonic())

    # When emails keep asking for a slot with no time left in their batch's window
    with pytest.raises(Throttled, match="no slot before the batch's time ran out"):
        three_with_no_time_left()
    # Then the refusal came without sleeping until the next window
    assert time.monotonic() - started < 1.0


def test_with_time_left_the_wait_for_the_next_slot_is_taken(redis_namespace: str) -> None:
    throttle = SendThrottle(REDIS_URL, namespace=redis_namespace, rate=1)
    throttle.acquire(deadline=time.monotonic() + 5)
    throttle.acquire(deadline=time.monotonic() + 5)  # waits for the next second's slot
