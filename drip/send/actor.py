"""The Dramatiq actor `drip.send_delivery`: one message carries one delivery id, nothing else.

Messages are at-least-once; `DeliverySender` makes a duplicate harmless. A transient
provider failure is retried through `dramatiq.Retry` with drip's own backoff, bounded by
`DRIP_SEND_MAX_ATTEMPTS` counted on the row. Any other exception (the database is
restarting) is retried by Dramatiq's Retries middleware; when even that gives up, the
row's lease runs out and the scheduler enqueues it again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dramatiq
from dramatiq import Actor, Broker, Message

from drip.send.sender import DeliverySender, Outcome

#: Name of the send actor: the contract between the scheduler and every worker.
SEND_ACTOR = "drip.send_delivery"

#: The queue send messages go to.
SEND_QUEUE = "drip.send"

#: Dramatiq's own retries, for failures other than the provider's (database down...).
ACTOR_OPTIONS: dict[str, Any] = {
    "max_retries": 1000,
    "min_backoff": 1_000,
    "max_backoff": 60_000,
    "time_limit": 120_000,
}


def enqueue_sends(broker: Broker, delivery_ids: Sequence[int]) -> None:
    """Enqueue one `drip.send_delivery` message per id (after the claiming transaction commits)."""
    for delivery_id in delivery_ids:
        broker.enqueue(
            Message(
                queue_name=SEND_QUEUE,
                actor_name=SEND_ACTOR,
                args=(delivery_id,),
                kwargs={},
                options={},
            )
        )


def declare_send_actor(broker: Broker, sender: DeliverySender) -> Actor[[int], None]:
    """Declare `drip.send_delivery` on `broker`, running `sender`."""

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

    return Actor(
        send_delivery,
        broker=broker,
        actor_name=SEND_ACTOR,
        queue_name=SEND_QUEUE,
        priority=0,
        options=dict(ACTOR_OPTIONS),
    )
