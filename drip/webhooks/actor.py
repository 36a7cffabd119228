"""The Dramatiq actor `drip.deliver_webhooks`, on its own queue, and the pool it feeds.

The actor only hands row ids to a small pool of sender threads and returns, so a dead
receiver that holds each attempt for the full timeouts ties up those threads, never the
worker threads that send email. The rows, not the messages, are the record: a message
lost, or a process killed with ids in its pool, leaves rows the recovery job enqueues
again once their claim and enqueue times have passed.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import structlog
from dramatiq import Actor, Broker, Message

from drip.webhooks.delivery import WebhookSender

log = structlog.get_logger(__name__)

#: Name and queue of the webhooks actor; the queue is in `drip.runtime.QUEUES`.
WEBHOOKS_ACTOR = "drip.deliver_webhooks"
WEBHOOKS_QUEUE = "drip.webhooks"

#: Row ids per message.
BATCH = 50

#: Sender threads per process: concurrent attempts, each up to connect + read timeouts.
SENDER_THREADS = 4


def enqueue_webhooks(broker: Broker, row_ids: Sequence[int]) -> None:
    """Enqueue outbox rows (after the transaction that wrote them commits)."""
    for start in range(0, len(row_ids), BATCH):
        broker.enqueue(
            Message(
                queue_name=WEBHOOKS_QUEUE,
                actor_name=WEBHOOKS_ACTOR,
                args=(list(row_ids[start : start + BATCH]),),
                kwargs={},
                options={},
            )
        )


class SenderPool:
    """Sender threads fed with row ids; an id already waiting or in flight is not added
    twice."""

    def __init__(self, sender: WebhookSender, *, threads: int = SENDER_THREADS) -> None:
        self.sender = sender
        self._threads = threads
        self._executor: ThreadPoolExecutor | None = None
        self._held: set[int] = set()
        self._lock = threading.Lock()

    def submit(self, row_ids: Sequence[int]) -> None:
        """Queue each row for an attempt; return at once."""
        with self._lock:
            if self._executor is None:  # started on first use: API processes never need it
                self._executor = ThreadPoolExecutor(
                    max_workers=self._threads, thread_name_prefix="drip-webhooks"
                )
            fresh = [i for i in row_ids if i not in self._held]
            self._held.update(fresh)
            for row_id in fresh:
                self._executor.submit(self._deliver, row_id)

    def _deliver(self, row_id: int) -> None:
        try:
            self.sender.deliver(row_id)
        except Exception as exc:  # the database may be restarting: the recovery job retries
            log.warning("webhooks.attempt_failed", row_id=row_id, error=str(exc))
        finally:
            with self._lock:
                self._held.discard(row_id)

    def idle(self) -> bool:
        """Whether no row waits or is in flight."""
        with self._lock:
            return not self._held

    def close(self) -> None:
        """Let attempts in flight finish, then stop the threads."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
        self.sender.close()


def declare_webhooks_actor(broker: Broker, pool: SenderPool) -> Actor[[list[int]], None]:
    """Declare `drip.deliver_webhooks` on `broker`."""

    def deliver_webhooks(row_ids: list[int]) -> None:
        """Hand the rows to the sender threads."""
        pool.submit(row_ids)

    return Actor(
        deliver_webhooks,
        broker=broker,
        actor_name=WEBHOOKS_ACTOR,
        queue_name=WEBHOOKS_QUEUE,
        priority=100,  # behind email sends when a worker has both waiting
        options={"max_retries": 3, "min_backoff": 1_000, "max_backoff": 10_000},
    )
