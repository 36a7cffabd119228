"""Claiming due rows and recovering expired leases: each one conditional UPDATE ... RETURNING.

On PostgreSQL the claim selects with `FOR UPDATE SKIP LOCKED`, so any number of
schedulers split the due rows between them instead of waiting on each other; the partial
index on `due_at WHERE status = 'scheduled'` makes its cost grow with the due rows only.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from drip.models import Delivery, DeliveryStatus, ProviderEvent, SequenceState
from drip.schedule.store import lease


def claim_due_deliveries(
    session: Session, *, now: datetime, limit: int, queue_lease: float
) -> list[int]:
    """Mark up to `limit` due rows queued (leased) and return their ids, oldest first."""
    due = (
        select(Delivery.id)
        .where(
            Delivery.status == DeliveryStatus.SCHEDULED,
            Delivery.due_at <= now,
            Delivery.sequence_id.not_in(select(SequenceState.sequence_id)),
        )
        .order_by(Delivery.due_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    claimed = session.scalars(
        update(Delivery)
        .where(Delivery.id.in_(due.scalar_subquery()), Delivery.status == DeliveryStatus.SCHEDULED)
        .values(status=DeliveryStatus.QUEUED, lease_until=lease(now, queue_lease), updated_at=now)
        .returning(Delivery.id)
    )
    return list(claimed)


def renew_lost_queued(
    session: Session, *, now: datetime, limit: int, queue_lease: float
) -> list[int]:
    """Queued rows whose lease ran out (message lost with Redis or a killed worker): renew them."""
    expired = (
        select(Delivery.id)
        .where(Delivery.status == DeliveryStatus.QUEUED, Delivery.lease_until < now)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(
        session.scalars(
            update(Delivery)
            .where(
                Delivery.id.in_(expired.scalar_subquery()), Delivery.status == DeliveryStatus.QUEUED
            )
            .values(lease_until=lease(now, queue_lease), updated_at=now)
            .returning(Delivery.id)
        )
    )


def expired_sending(
    session: Session, *, now: datetime, limit: int
) -> list[tuple[int, datetime | None]]:
    """Rows in `sending` that need the scheduler, with any `processed` time: those past their
    lease (a worker died mid-send, or the answer was lost and the wait is over), and those
    the provider already reported as processed.

    A `processed` event carrying the row's `delivery_id` settles it as sent; without one,
    past its lease, the caller applies the configured policy.
    """
    processed_at = (
        select(ProviderEvent.occurred_at)
        .where(ProviderEvent.delivery_id == Delivery.id, ProviderEvent.event == "processed")
        .limit(1)
        .scalar_subquery()
    )
    has_event = (
        select(ProviderEvent.id)
        .where(ProviderEvent.delivery_id == Delivery.id, ProviderEvent.event == "processed")
        .exists()
    )
    rows = session.execute(
        select(Delivery.id, processed_at)
        .where(
            Delivery.status == DeliveryStatus.SENDING, or_(Delivery.lease_until < now, has_event)
        )
        .limit(limit)
        .with_for_update(skip_locked=True, of=Delivery)
    ).all()
    return [(row[0], row[1]) for row in rows]
