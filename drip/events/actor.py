"""The Dramatiq actor `drip.apply_events`: applies stored provider events by id."""

from __future__ import annotations

from collections.abc import Sequence

from dramatiq import Actor, Broker, Message
from sqlalchemy.orm import Session, sessionmaker

from drip.db import transaction, utcnow
from drip.events.effects import apply_events

#: Name and queue of the events actor.
EVENTS_ACTOR = "drip.apply_events"
EVENTS_QUEUE = "drip.events"


def enqueue_events(broker: Broker, event_ids: Sequence[int]) -> None:
    """One message for a batch of stored events (after their transaction commits)."""
    broker.enqueue(
        Message(
            queue_name=EVENTS_QUEUE,
            actor_name=EVENTS_ACTOR,
            args=(list(event_ids),),
            kwargs={},
            options={},
        )
    )


def declare_events_actor(
    broker: Broker, sessions: sessionmaker[Session]
) -> Actor[[list[int]], None]:
    """Declare `drip.apply_events` on `broker`."""

    def apply_stored_events(event_ids: list[int]) -> None:
        """Apply each event once (rows already processed are skipped)."""
        with transaction(sessions) as session:
            apply_events(session, event_ids, now=utcnow())

    return Actor(
        apply_stored_events,
        broker=broker,
        actor_name=EVENTS_ACTOR,
        queue_name=EVENTS_QUEUE,
        priority=0,
        options={"max_retries": 20, "min_backoff": 1_000, "max_backoff": 60_000},
    )
