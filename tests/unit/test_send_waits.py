"""How long the send path waits, and that nothing acts before the wait is over: a lost
answer waits `ambiguous_wait` for the provider's event, and a 429 waits for its reset.

SQLite, a memory transport that fails on request, Dramatiq's StubBroker and a fixed clock.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker
from dramatiq.common import current_millis, dq_name

from drip.errors import AmbiguousSendError, TransientSendError
from drip.models import DeliveryStatus
from drip.send.actor import SEND_BATCH_ACTOR, SEND_QUEUE, declare_send_actor
from drip.send.sender import Outcome
from tests.unit.world import AMBIGUOUS_WAIT, QUEUE_LEASE, START, World, build_world


@pytest.fixture
def setup(tmp_path: Path, sequences_dir: Path) -> Iterator[World]:
    yield from build_world(tmp_path, sequences_dir)


def _utc(moment: datetime | None) -> datetime | None:
    """SQLite hands back naive UTC datetimes; compare them as aware ones."""
    return moment if moment is None or moment.tzinfo else moment.replace(tzinfo=UTC)


def test_a_lost_answer_is_left_alone_until_the_ambiguous_wait_is_over(setup: World) -> None:
    # Given a send whose request went out and whose answer was lost
    first = setup.signup("a@example.com")
    setup.transport.failures = [AmbiguousSendError("read timed out")]
    assert setup.sender.send(first).outcome is Outcome.AMBIGUOUS
    # Then the row stays `sending`, leased for the ambiguous wait (not the queue lease)
    row = setup.row(first)
    assert row.status is DeliveryStatus.SENDING
    assert _utc(row.lease_until) == START + timedelta(seconds=AMBIGUOUS_WAIT)
    # And a scheduler past the queue lease, but inside the wait, leaves it to the event
    setup.clock.advance(seconds=QUEUE_LEASE + 1)
    report = setup.scheduler().tick()
    assert (report.resolved_sent, report.resent, report.marked_for_review) == (0, 0, 0)
    assert setup.row(first).status is DeliveryStatus.SENDING
    assert setup.enqueued == []
    # When the wait is over with no `processed` event, the policy (resend) applies
    setup.clock.now = START + timedelta(seconds=AMBIGUOUS_WAIT + 1)
    assert setup.scheduler().tick().resent == 1
    assert setup.row(first).status is DeliveryStatus.QUEUED
    assert setup.enqueued == [first]


def test_a_429_leases_the_row_past_its_reset(setup: World) -> None:
    # Given the provider answers 429 with a reset 7.5 s away, and no shared send rate
    first = setup.signup("a@example.com")
    setup.transport.failures = [TransientSendError("429", retry_after=7.5)]
    result = setup.sender.send(first)
    # Then the retry waits for the reset, and the scheduler does not enqueue it meanwhile
    assert (result.outcome, result.retry_in) == (Outcome.RETRY, 7.5)
    row = setup.row(first)
    assert row.status is DeliveryStatus.QUEUED
    assert _utc(row.lease_until) == START + timedelta(seconds=7.5 + QUEUE_LEASE)


def test_a_429_in_a_batch_is_retried_by_a_message_delayed_until_its_reset(setup: World) -> None:
    # Given the scheduler's batch actor on a stub broker, and a 429 that resets in 7.5 s
    broker = StubBroker()
    broker.declare_queue(SEND_QUEUE)
    declare_send_actor(broker, setup.sender)
    first = setup.signup("a@example.com")
    setup.transport.failures = [TransientSendError("429", retry_after=7.5)]
    # When the batch is sent
    before = current_millis()
    broker.actors[SEND_BATCH_ACTOR]([first])
    after = current_millis()
    # Then its one retry waits in the delay queue until the reset, not before
    (retry,) = [dramatiq.Message.decode(m) for m in broker.queues[dq_name(SEND_QUEUE)].queue]
    assert retry.args == (first,)
    assert before + 7_500 <= retry.options["eta"] <= after + 7_500
    assert broker.queues[SEND_QUEUE].qsize() == 0
    broker.close()


def test_a_429_of_a_single_delivery_is_retried_after_its_reset(setup: World) -> None:
    broker = StubBroker()
    broker.declare_queue(SEND_QUEUE)
    send_one = declare_send_actor(broker, setup.sender)
    first = setup.signup("a@example.com")
    setup.transport.failures = [TransientSendError("429", retry_after=7.5)]
    with pytest.raises(dramatiq.Retry) as retry:
        send_one(first)
    assert retry.value.delay == 7_500
    broker.close()
