"""The due-now buffer: ids of rows due at once, gathered so they are sent in batches.

A signup whose step 1 is due at once used to get a message of its own, and the worker
sent it alone: every email paid a message, a claim, a facts query and a finish. Now the
API pushes the id onto this buffer (a Redis list) and, only when no drain is pending,
enqueues one `drip.drain_due_now` message. The drain takes whatever the buffer holds and
enqueues it as the same batch messages (`BATCH` ids each) the scheduler sends. Idle, an email waits
for two messages and `LINGER` instead of one message (no scheduler tick); at a steady rate
the ids of that short wait share a batch; under a burst, ids pile up while the workers
are busy and leave `BATCH` at a time, so the burst costs what the batched path costs.

Why nothing is lost and nothing is sent twice:

- The `armed` key says a drain message is pending. A drain deletes it *before* it takes
  ids, so an id pushed before the delete is taken by that drain, and a push after it
  finds the key gone and arms (enqueues) another. The key expires after `ARMED_TTL`, so a
  drain message that never runs delays the ids only until the next push.
- The row is committed `queued` before its id is pushed. If the push (or the drain
  message) is refused, the caller hands the row back to the schedule; an id left in the
  buffer then finds the row no longer `queued` and the claim leaves it alone. An id taken
  by a drain that then dies stays `queued` until its lease runs out and the scheduler
  enqueues it again, as for any lost message.
- Sending is guarded by the row's conditional claim (`queued -> sending`), as always: an
  id that reaches the worker twice is `NOT_MINE` the second time.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence
from typing import Protocol

import redis
from dramatiq import Broker
from dramatiq.brokers.redis import RedisBroker

#: Milliseconds the `armed` marker lives: the longest a lost drain message delays new ids.
ARMED_TTL_MS = 2_000

#: Ids a drain takes from the buffer per round trip.
TAKE = 500

#: Seconds a drain waits before it takes, so that ids arriving close together share a batch:
#: a batch's fixed cost (a message, a claim, a facts query, a finish) is most of an email's
#: cost when the batch is small. Under a burst the ids wait in the buffer anyway.
LINGER = 0.05


class DueNowBuffer(Protocol):
    """Ids waiting for a drain, and the marker that says a drain message is pending."""

    def push(self, delivery_ids: Sequence[int]) -> bool:
        """Append the ids; True when this call armed the buffer (the caller enqueues a drain)."""
        ...

    def disarm(self) -> None:
        """Forget the marker: the next push arms again."""
        ...

    def take(self, limit: int) -> list[int]:
        """Remove and return up to `limit` ids, oldest first."""
        ...


class RedisDueNowBuffer:
    """The buffer as a Redis list beside Dramatiq's queues, under the broker's namespace."""

    def __init__(self, client: redis.Redis, namespace: str) -> None:
        self.client = client
        self.ids_key = f"{namespace}:due-now.ids"
        self.armed_key = f"{namespace}:due-now.armed"

    def push(self, delivery_ids: Sequence[int]) -> bool:
        """See `DueNowBuffer.push`: one round trip, the push before the marker."""
        pipe = self.client.pipeline(transaction=False)
        pipe.rpush(self.ids_key, *delivery_ids)
        pipe.set(self.armed_key, 1, nx=True, px=ARMED_TTL_MS)
        _, armed = pipe.execute()
        return bool(armed)

    def disarm(self) -> None:
        """See `DueNowBuffer.disarm`."""
        self.client.delete(self.armed_key)

    def take(self, limit: int) -> list[int]:
        """See `DueNowBuffer.take` (`LPOP` with a count: Redis 6.2 or later)."""
        taken = self.client.lpop(self.ids_key, limit)
        return [int(raw) for raw in taken or []]


class MemoryDueNowBuffer:
    """The buffer in memory, for Dramatiq's StubBroker in tests."""

    def __init__(self) -> None:
        self.ids: list[int] = []
        self.armed = False
        self._lock = threading.Lock()

    def push(self, delivery_ids: Sequence[int]) -> bool:
        """See `DueNowBuffer.push`."""
        with self._lock:
            self.ids.extend(delivery_ids)
            armed, self.armed = not self.armed, True
            return armed

    def disarm(self) -> None:
        """See `DueNowBuffer.disarm`."""
        with self._lock:
            self.armed = False

    def take(self, limit: int) -> list[int]:
        """See `DueNowBuffer.take`."""
        with self._lock:
            taken, self.ids = self.ids[:limit], self.ids[limit:]
            return taken


_buffers: weakref.WeakKeyDictionary[Broker, DueNowBuffer] = weakref.WeakKeyDictionary()
_buffers_lock = threading.Lock()


def buffer_for(broker: Broker) -> DueNowBuffer:
    """The broker's buffer: a Redis list on a Redis broker, else one in memory per broker."""
    with _buffers_lock:
        found = _buffers.get(broker)
        if found is None:
            if isinstance(broker, RedisBroker):
                found = RedisDueNowBuffer(broker.client, broker.namespace)
            else:
                found = MemoryDueNowBuffer()
            _buffers[broker] = found
        return found
