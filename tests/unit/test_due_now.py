"""Rows due at once go out in batches through the due-now buffer, each once: on Dramatiq's
StubBroker and the sender's in-memory twin (no database, no Redis)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import dramatiq
import pytest
from dramatiq import Message
from dramatiq.brokers.stub import StubBroker

from drip.models import DeliveryStatus
from drip.send import actor as send_actor
from drip.send.due_now import LINGER, MemoryDueNowBuffer, buffer_for
from drip.send.sender import SendResult
from tests.unit.test_sender_twin import Twin
from tests.unit.test_sender_twin import twin as twin  # the shared fixture


class CountingBroker(StubBroker):
    """A stub broker that counts the messages of each actor, and can refuse the drain's."""

    def __init__(self) -> None:
        super().__init__()
        self.enqueued: list[str] = []
        self.refuse_drain = False

    def enqueue(self, message: Message[Any], *, delay: int | None = None) -> Message[Any]:
        if self.refuse_drain and message.actor_name == send_actor.DRAIN_ACTOR:
            raise ConnectionError("Redis refused the connection")
        self.enqueued.append(message.actor_name)
        return super().enqueue(message, delay=delay)


@pytest.fixture
def broker(twin: Twin) -> Iterator[CountingBroker]:
    broker = CountingBroker()
    broker.emit_after("process_boot")
    send_actor.declare_send_actor(broker, twin.sender)
    yield broker
    broker.close()


def run_worker(broker: StubBroker) -> None:
    worker = dramatiq.Worker(broker, worker_timeout=50)
    worker.start()
    try:
        broker.join(send_actor.SEND_QUEUE, timeout=10_000)
        worker.join()
    finally:
        worker.stop()


def count_batches(twin: Twin) -> list[list[int]]:
    """Record the ids of every `send_batch` call the actors make."""
    calls: list[list[int]] = []
    real = twin.sender.send_batch

    def counting(delivery_ids: Sequence[int]) -> dict[int, SendResult]:
        calls.append(list(delivery_ids))
        return real(delivery_ids)

    twin.sender.send_batch = counting  # type: ignore[method-assign]
    return calls


def test_a_burst_of_single_ids_is_sent_in_batches_and_each_row_once(
    twin: Twin, broker: CountingBroker
) -> None:
    # Given 60 signups' step 1, each enqueued on its own as the API does, and each id
    # enqueued a second time (at-least-once: a retried push)
    batches = count_batches(twin)
    rows = [twin.person(f"p{n}@example.com") for n in range(60)]
    for row in rows:
        send_actor.enqueue_due_now(broker, [row.id])
    for row in rows:
        send_actor.enqueue_due_now(broker, [row.id])
    # Then one drain message stands for all of them
    assert broker.enqueued == [send_actor.DRAIN_ACTOR]
    # When the worker runs
    run_worker(broker)
    # Then the 120 ids went out as full batches, not one message each
    sizes = [min(send_actor.BATCH, 120 - start) for start in range(0, 120, send_actor.BATCH)]
    assert [len(b) for b in batches] == sizes
    assert broker.enqueued.count(send_actor.SEND_BATCH_ACTOR) == len(sizes)
    # And each row was sent exactly once: the second copy of each id found it claimed
    sent = sorted(e.to_email for e in twin.transport.sent)
    assert sent == sorted(f"p{n}@example.com" for n in range(60))
    assert {r.status for r in rows} == {DeliveryStatus.SENT}
    assert buffer_for(broker).take(1000) == []


def test_ids_arriving_during_the_drains_wait_share_its_batch(
    twin: Twin, broker: CountingBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    batches = count_batches(twin)
    rows = [twin.person(f"p{n}@example.com") for n in range(5)]

    def arrivals(seconds: float) -> None:
        # While the drain waits, four more signups arrive
        assert seconds == LINGER
        for row in rows[1:]:
            send_actor.enqueue_due_now(broker, [row.id])

    monkeypatch.setattr(send_actor, "sleep", arrivals)
    # Given one signup's id, the only one when its drain message is enqueued
    send_actor.enqueue_due_now(broker, [rows[0].id])
    # When the worker runs the drain
    run_worker(broker)
    # Then all five went in one batch, and the later four enqueued no drain of their own
    assert batches == [[r.id for r in rows]]
    assert broker.enqueued == [send_actor.DRAIN_ACTOR, send_actor.SEND_BATCH_ACTOR]


def test_an_id_pushed_while_a_drain_takes_is_not_stranded(
    twin: Twin, broker: CountingBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, late = twin.person("first@example.com"), twin.person("late@example.com")
    buffer = buffer_for(broker)
    take = buffer.take

    def take_then_a_push(limit: int) -> list[int]:
        taken = take(limit)
        monkeypatch.setattr(buffer, "take", take)  # once
        send_actor.enqueue_due_now(broker, [late.id])  # a signup arrives just after the take
        return taken

    monkeypatch.setattr(buffer, "take", take_then_a_push)
    # Given one signup's id and its drain
    send_actor.enqueue_due_now(broker, [first.id])
    # When the worker runs it, and another id is pushed after the drain took the buffer
    run_worker(broker)
    # Then the late id armed a drain of its own and was sent too
    assert sorted(e.to_email for e in twin.transport.sent) == [
        "first@example.com",
        "late@example.com",
    ]


def test_ids_pushed_after_a_drain_began_arm_the_next_one(twin: Twin) -> None:
    buffer = MemoryDueNowBuffer()
    assert buffer.push([1]) is True  # idle: this push enqueues the drain
    assert buffer.push([2]) is False  # a drain is pending and will take it
    buffer.disarm()  # the drain begins
    assert buffer.push([3]) is True  # may be after the drain's last take: arm another
    assert buffer.take(10) == [1, 2, 3]


def test_a_refused_drain_raises_and_disarms_so_the_rows_go_back(
    twin: Twin, broker: CountingBroker
) -> None:
    # Given Redis that takes the id but refuses the drain message
    row = twin.person("a@example.com")
    broker.refuse_drain = True
    # When the row is enqueued, the refusal reaches the caller (which hands the row back)
    with pytest.raises(ConnectionError):
        send_actor.enqueue_due_now(broker, [row.id])
    # And the marker is gone: the next push enqueues a drain at once
    broker.refuse_drain = False
    other = twin.person("b@example.com")
    send_actor.enqueue_due_now(broker, [other.id])
    assert broker.enqueued == [send_actor.DRAIN_ACTOR]
    run_worker(broker)
    # And both ids were sent (the first had not been handed back in this test)
    assert sorted(e.to_email for e in twin.transport.sent) == ["a@example.com", "b@example.com"]
