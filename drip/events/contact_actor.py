"""The Dramatiq actor `drip.apply_contact_events`: applies stored contact events by id.

`POST /v1/events` enqueues one message per new event after its transaction commits; a
message lost (Redis down, a worker killed) is made good by the scheduler's recovery job
`apply_stale_contact_events`. Each event is applied in its own transaction, so one that
fails does not hold back the others; the message is then retried for it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import structlog
from dramatiq import Actor, Broker, Message
from sqlalchemy.orm import Session, sessionmaker

from drip.db import transaction, utcnow
from drip.events.actor import EVENTS_QUEUE
from drip.events.contact_apply import (
    EnqueueCommitted,
    Reaction,
    apply_contact_event,
    sequence_reaction,
)
from drip.sequences.catalog import SequenceCatalog

log = structlog.get_logger(__name__)

#: Name of the contact events actor; it shares the events queue every worker consumes.
CONTACT_EVENTS_ACTOR = "drip.apply_contact_events"


def enqueue_contact_events(broker: Broker, event_ids: Sequence[int]) -> None:
    """One message for stored contact events (after their transaction commits)."""
    broker.enqueue(
        Message(
            queue_name=EVENTS_QUEUE,
            actor_name=CONTACT_EVENTS_ACTOR,
            args=(list(event_ids),),
            kwargs={},
            options={},
        )
    )


def apply_each(
    sessions: sessionmaker[Session],
    event_ids: Sequence[int],
    *,
    react: Reaction,
    catalog: SequenceCatalog,
    queue_lease: float,
    enqueue_committed: EnqueueCommitted,
) -> tuple[int, list[int]]:
    """Apply each event in its own transaction and enqueue what it queued after commit;
    (how many were applied, the ids that failed). Failures are logged, not raised."""
    applied, failed = 0, []
    for event_id in event_ids:
        try:
            with transaction(sessions) as session:
                queued = apply_contact_event(
                    session,
                    event_id,
                    react=react,
                    catalog=catalog,
                    now=utcnow(),
                    queue_lease=queue_lease,
                )
        except Exception as exc:
            log.warning("contact_events.apply_failed", event_id=event_id, error=str(exc))
            failed.append(event_id)
            continue
        if queued is not None:
            applied += 1
            enqueue_committed(queued)
    return applied, failed


def declare_contact_events_actor(
    broker: Broker,
    *,
    sessions: sessionmaker[Session],
    catalog: SequenceCatalog,
    queue_lease: float,
    enqueue_committed: EnqueueCommitted,
    reaction: Callable[[], Reaction] = sequence_reaction,
) -> Actor[[list[int]], None]:
    """Declare `drip.apply_contact_events` on `broker`."""

    def apply_contact_events(event_ids: list[int]) -> None:
        """Apply each event once; raise (and so retry) when any failed."""
        _, failed = apply_each(
            sessions,
            event_ids,
            react=reaction(),
            catalog=catalog,
            queue_lease=queue_lease,
            enqueue_committed=enqueue_committed,
        )
        if failed:
            raise RuntimeError(f"contact events {failed} could not be applied; retrying")

    return Actor(
        apply_contact_events,
        broker=broker,
        actor_name=CONTACT_EVENTS_ACTOR,
        queue_name=EVENTS_QUEUE,
        priority=0,
        options={"max_retries": 20, "min_backoff": 1_000, "max_backoff": 60_000},
    )
