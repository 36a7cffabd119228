"""The Dramatiq actors that send: messages carry delivery ids only, up to `BATCH` (50) per message.

Rows due at once (a signup's step 1) go through the due-now buffer (`drip.send.due_now`):
`enqueue_due_now` pushes their ids and, when no drain is pending, enqueues one
`drip.drain_due_now` message, which turns whatever the buffer holds into batch messages.

Messages are at-least-once; `DeliverySender` makes a duplicate harmless. A transient
provider failure is retried through `dramatiq.Retry` with drip's own backoff, bounded by
`DRIP_SEND_MAX_ATTEMPTS` counted on the row. Any other exception (the database is
restarting) is retried by Dramatiq's Retries middleware; when even that gives up, the
row's lease runs out and the scheduler enqueues it again.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import suppress
from time import sleep
from typing import Any
from uuid import uuid4

import dramatiq
from dramatiq import Actor, Broker, Message
from dramatiq.brokers.redis import RedisBroker
from dramatiq.common import current_millis

from drip.send.due_now import LINGER, TAKE, buffer_for
from drip.send.sender import SEND_WINDOW, DeliverySender, Outcome

#: Name of the send actor: the contract between the scheduler and every worker.
SEND_ACTOR = "drip.send_delivery"

#: Name of the batch actor the scheduler enqueues: up to `BATCH` delivery ids per message.
SEND_BATCH_ACTOR = "drip.send_deliveries"

#: Name of the actor that turns the due-now buffer's ids into batch messages.
DRAIN_ACTOR = "drip.drain_due_now"

#: Deliveries per message: fewer messages per tick, and a failure still retries only its own.
#: 50 rather than 25 cut the worker's CPU per email from 0.76 to 0.55 ms. 100 cut it by
#: another sixth, but a burst of signups' first emails then drained at 0.66 to 0.86 x the
#: batched rate (0.8 is the target): 5,000 ids make only 50 messages for 16 threads
#: (docs/performance.md, round 5).
BATCH = 50

#: The queue send messages go to.
SEND_QUEUE = "drip.send"

#: Dramatiq's own retries, for failures other than the provider's (database down...). The
#: time limit is twice the batch's send window, so a batch ends (its late emails held back
#: for a retry) long before Dramatiq would interrupt it with answers already given.
ACTOR_OPTIONS: dict[str, Any] = {
    "max_retries": 1000,
    "min_backoff": 1_000,
    "max_backoff": 60_000,
    "time_limit": int(2 * SEND_WINDOW * 1000),
}


def enqueue_sends(broker: Broker, delivery_ids: Sequence[int]) -> None:
    """Enqueue the ids (after the claiming transaction commits), up to `BATCH` per message.

    On Redis the messages go in one pipelined round trip, through the same dispatch script
    Dramatiq's own `enqueue` runs per message.
    """
    messages: list[Message[Any]] = [
        Message(
            queue_name=SEND_QUEUE,
            actor_name=SEND_BATCH_ACTOR,
            args=(list(delivery_ids[start : start + BATCH]),),
            kwargs={},
            options={"redis_message_id": str(uuid4())},
        )
        for start in range(0, len(delivery_ids), BATCH)
    ]
    if len(messages) > 1 and isinstance(broker, RedisBroker):
        try:
            _pipelined_enqueue(broker, messages)
            return
        except AttributeError:  # a Dramatiq whose internals moved: fall back to one by one
            pass
    for message in messages:
        broker.enqueue(message)


def enqueue_due_now(broker: Broker, delivery_ids: Sequence[int]) -> None:
    """Enqueue committed `queued` rows that are due at once, to be sent with others in a batch.

    The ids go onto the broker's due-now buffer; the first push after a drain started
    enqueues the next drain message. Raises when Redis refuses either, so the caller
    (`enqueue_after_commit`) hands the rows back to the schedule.
    """
    if not delivery_ids:
        return
    buffer = buffer_for(broker)
    if not buffer.push(delivery_ids):
        return  # a drain message is pending and will take these ids
    try:
        broker.enqueue(
            Message(queue_name=SEND_QUEUE, actor_name=DRAIN_ACTOR, args=(), kwargs={}, options={})
        )
    except Exception:
        # Let the next push arm again rather than wait for the marker to expire.
        with suppress(Exception):
            buffer.disarm()
        raise


def _pipelined_enqueue(broker: RedisBroker, messages: list[Message[Any]]) -> None:
    dispatch = broker.scripts["dispatch"]
    unpack = broker._max_unpack_size()  # type: ignore[no-untyped-call]
    pipe = broker.client.pipeline(transaction=False)
    for message in messages:
        broker.emit_before("enqueue", message, None)
        dispatch(
            keys=[broker.namespace],
            client=pipe,
            args=[
                "enqueue",
                current_millis(),
                message.queue_name,
                broker.broker_id,
                broker.heartbeat_timeout,
                broker.dead_message_ttl,
                0,
                unpack,
                message.options["redis_message_id"],
                message.encode(),
            ],
        )
    pipe.execute()
    for message in messages:
        broker.emit_after("enqueue", message, None)


def declare_send_actor(broker: Broker, sender: DeliverySender) -> Actor[[int], None]:
    """Declare `drip.send_deliveries` (the scheduler's batches), `drip.send_delivery` (one
    delivery, for retries with backoff), both running `sender`, and `drip.drain_due_now`
    (the due-now buffer into batches) on `broker`."""
    buffer = buffer_for(broker)

    def drain_due_now() -> None:
        """Take every id the due-now buffer holds and enqueue them as batch messages."""
        sleep(LINGER)  # armed meanwhile: the ids pushed now wait for this drain
        buffer.disarm()  # before taking: an id pushed from now on arms the next drain
        while True:
            taken = buffer.take(TAKE)
            if taken:
                enqueue_sends(broker, taken)
            if len(taken) < TAKE:
                return

    def send_delivery(delivery_id: int) -> None:
        """Send one delivery; enqueue the next step when it is due at once."""
        result = sender.send(delivery_id)
        if result.next_delivery is not None:
            enqueue_sends(broker, [result.next_delivery])
        if result.outcome is Outcome.RETRY:
            delay_ms = int((result.retry_in or 1.0) * 1000)
            raise dramatiq.Retry(
                f"delivery {delivery_id}: transient provider failure", delay=delay_ms
            )

    def send_deliveries(delivery_ids: list[int]) -> None:
        """Send a batch; a transient failure is retried alone, with its own backoff."""
        results = sender.send_batch(delivery_ids)
        following = [r.next_delivery for r in results.values() if r.next_delivery is not None]
        for delivery_id, result in results.items():
            if result.outcome is Outcome.RETRY:
                delay_ms = int((result.retry_in or 1.0) * 1000)
                broker.enqueue(
                    Message(
                        queue_name=SEND_QUEUE,
                        actor_name=SEND_ACTOR,
                        args=(delivery_id,),
                        kwargs={},
                        options={},
                    ),
                    delay=delay_ms,
                )
        if following:
            enqueue_sends(broker, following)

    if SEND_BATCH_ACTOR not in broker.actors:
        Actor(
            send_deliveries,
            broker=broker,
            actor_name=SEND_BATCH_ACTOR,
            queue_name=SEND_QUEUE,
            priority=0,
            options=dict(ACTOR_OPTIONS),
        )
    if DRAIN_ACTOR not in broker.actors:
        Actor(
            drain_due_now,
            broker=broker,
            actor_name=DRAIN_ACTOR,
            queue_name=SEND_QUEUE,
            priority=0,
            options=dict(ACTOR_OPTIONS),
        )
    return Actor(
        send_delivery,
        broker=broker,
        actor_name=SEND_ACTOR,
        queue_name=SEND_QUEUE,
        priority=0,
        options=dict(ACTOR_OPTIONS),
    )
