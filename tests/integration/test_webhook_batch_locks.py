"""A webhook batch naming many deliveries is stored whole: the per-delivery locks that keep
each delivery's first event exact are bounded, so a batch of SendGrid's size cannot run
PostgreSQL out of lock slots."""

from __future__ import annotations

from sqlalchemy import func, select

from drip.db import transaction, utcnow
from drip.events.store import store_events
from drip.models import ProviderEvent
from drip.runtime import Runtime

#: More distinct deliveries than PostgreSQL's default lock table holds (64 x 100 slots).
DELIVERIES = 12_000


def test_a_batch_naming_thousands_of_deliveries_is_stored(runtime: Runtime) -> None:
    # Given one batch with an open for each of 12,000 deliveries
    events = [
        {
            "email": f"p{n}@example.com",
            "event": "open",
            "sg_event_id": f"open-{n}",
            "timestamp": 1_790_000_000,
            "delivery_id": str(n + 1),
        }
        for n in range(DELIVERIES)
    ]
    # When it is stored in one transaction, as the webhook does
    with transaction(runtime.sessions) as session:
        stored = store_events(session, events, now=utcnow())
    # Then every event is kept
    assert len(stored) == DELIVERIES
    with runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(ProviderEvent)) == DELIVERIES
