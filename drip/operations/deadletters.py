"""`drip dead-letters`: Dramatiq's dead-letter queues in Redis, listed and put back.

A message lands there when Dramatiq gave up retrying it. Its delivery is safe in the
database either way (its lease brings it back), so requeueing only saves the wait.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from dramatiq import Message
from dramatiq.brokers.redis import RedisBroker
from dramatiq.common import q_name


@dataclass(frozen=True)
class DeadLetter:
    """A message Dramatiq gave up on, as `drip dead-letters` lists it."""

    queue: str
    message_id: str
    actor: str
    args: tuple[object, ...]
    dead_at: datetime
    raw: bytes


def _keys(broker: RedisBroker, queue: str) -> tuple[str, str]:
    xq = f"{broker.namespace}:{queue}.XQ"
    return xq, f"{xq}.msgs"


def dead_letters(broker: RedisBroker, queues: Iterable[str]) -> list[DeadLetter]:
    """Every dead-lettered message of `queues`, oldest first."""
    found: list[DeadLetter] = []
    client: Any = broker.client  # redis-py's own types are too loose to check here
    for queue in queues:
        xq, messages = _keys(broker, queue)
        for message_id, score in client.zrange(xq, 0, -1, withscores=True):
            raw = client.hget(messages, message_id)
            if raw is None:
                continue
            message = Message.decode(raw)
            found.append(
                DeadLetter(
                    queue,
                    message_id.decode(),
                    message.actor_name,
                    tuple(message.args),
                    datetime.fromtimestamp(score / 1000, tz=UTC),
                    raw,
                )
            )
    return sorted(found, key=lambda d: d.dead_at)


def requeue(broker: RedisBroker, letters: Iterable[DeadLetter]) -> int:
    """Put each message back on its queue, fresh, and drop it from the dead letters."""
    count = 0
    for letter in letters:
        message = Message.decode(letter.raw)
        fresh: Message[Any] = Message(
            queue_name=q_name(message.queue_name),
            actor_name=message.actor_name,
            args=message.args,
            kwargs=message.kwargs,
            options={},
        )
        broker.enqueue(fresh)
        xq, messages = _keys(broker, letter.queue)
        client: Any = broker.client
        client.zrem(xq, letter.message_id)
        client.hdel(messages, letter.message_id)
        count += 1
    return count
