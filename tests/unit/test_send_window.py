"""A batch hands emails to the provider only within its send window: an email whose call
has not started when the window closes is held back (not sent, no attempt spent) and goes
back to the schedule for a retry, so a batch behind a slow provider ends long before its
actor's time limit would cut it off with answers the provider had already given."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from drip.errors import Throttled
from drip.models import DeliveryStatus
from drip.send.actor import ACTOR_OPTIONS
from drip.send.message import OutgoingEmail
from drip.send.sender import SEND_WINDOW, Outcome
from drip.send.transmit import Transmitter
from drip.send.transports.memory import MemoryTransport
from tests.outgoing import outgoing_email as email
from tests.unit.world import World, build_world


class SlowTransport(MemoryTransport):
    """Each call takes one second of the test's monotonic clock."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0

    def send(self, email: OutgoingEmail) -> str:
        self.now += 1.0
        return super().send(email)


def test_no_call_starts_after_the_deadline_and_the_rest_are_held_back() -> None:
    # Given a provider that takes a second a call, and a batch of five with 2.5 s to send
    transport = SlowTransport()
    transmitter = Transmitter(transport, concurrency=1, monotonic=lambda: transport.now)
    # When the batch is sent
    answers = transmitter.send_all([email(n) for n in range(5)], deadline=2.5)
    # Then the calls started at 0, 1 and 2 s went out; the two due after 2.5 s never did
    assert answers[:3] == ["memory-1", "memory-2", "memory-3"]
    assert all(isinstance(a, Throttled) for a in answers[3:])
    assert len(transport.sent) == 3


def test_without_a_deadline_every_email_is_sent() -> None:
    transport = SlowTransport()
    transmitter = Transmitter(transport, concurrency=1, monotonic=lambda: transport.now)
    assert len(transmitter.send_all([email(n) for n in range(5)])) == 5
    assert len(transport.sent) == 5


@pytest.fixture
def world(tmp_path: Path, sequences_dir: Path) -> Iterator[World]:
    yield from build_world(tmp_path, sequences_dir)


def test_a_batch_past_its_window_is_retried_without_spending_an_attempt(world: World) -> None:
    # Given two signups' step 1 and a sender whose batch window is already closed
    ids = [world.signup("a@example.com"), world.signup("b@example.com")]
    world.sender.policy = replace(world.sender.policy, send_window=0.0)
    # When the batch runs
    results = world.sender.send_batch(ids)
    # Then nothing reached the provider; each row is queued again for a retry, its attempt
    # given back
    assert [results[i].outcome for i in ids] == [Outcome.RETRY, Outcome.RETRY]
    assert world.transport.sent == []
    for delivery_id in ids:
        row = world.row(delivery_id)
        assert row.status is DeliveryStatus.QUEUED
        assert row.attempts == 0
        assert "ran out" in (row.error or "")
    # And with the window open again, the retry sends each once
    world.sender.policy = replace(world.sender.policy, send_window=SEND_WINDOW)
    world.clock.advance(seconds=60)
    results = world.sender.send_batch(ids)
    assert [results[i].outcome for i in ids] == [Outcome.SENT, Outcome.SENT]
    assert len(world.transport.sent) == 2


def test_the_actors_time_limit_leaves_the_window_room_to_finish() -> None:
    # A call started as the window closes, then the batch's record, end within the limit
    assert ACTOR_OPTIONS["time_limit"] >= 2 * SEND_WINDOW * 1000
