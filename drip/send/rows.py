"""The send path's statements on `deliveries`: claim a batch, finish a batch.

Both are one conditional UPDATE for the whole batch, so a batch of 25 costs what one
delivery used to; each row still moves on its own condition, so a row another worker or
the scheduler moved first is left alone and reported as not ours.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import case, literal, update
from sqlalchemy.orm import Session

from drip.models import Delivery, DeliveryStatus
from drip.schedule.store import lease


def claim(
    session: Session, delivery_ids: Sequence[int], *, now: datetime, send_lease: float
) -> list[Delivery]:
    """`queued -> sending` for those of `delivery_ids` still queued, in the order given."""
    claimed = session.scalars(
        update(Delivery)
        .where(Delivery.id.in_(list(delivery_ids)), Delivery.status == DeliveryStatus.QUEUED)
        .values(
            status=DeliveryStatus.SENDING,
            attempts=Delivery.attempts + 1,
            lease_until=lease(now, send_lease),
            updated_at=now,
        )
        .returning(Delivery)
        .execution_options(synchronize_session=False)
    ).all()
    position = {delivery_id: n for n, delivery_id in enumerate(delivery_ids)}
    return sorted(claimed, key=lambda d: position[d.id])


def finish(
    session: Session, finishes: Mapping[int, Mapping[str, Any]], *, now: datetime
) -> set[int]:
    """Move each row out of `sending` with its own values (`status` and any other columns);
    return the ids that moved. A row missing from the answer was taken over (its lease ran
    out and the scheduler moved it), so its outcome is no longer this worker's to record."""
    if not finishes:
        return set()
    columns = sorted({column for values in finishes.values() for column in values})
    assignments: dict[str, Any] = {}
    for column in columns:
        attribute = getattr(Delivery, column)
        given = {i: values[column] for i, values in finishes.items() if column in values}
        distinct = set(map(repr, given.values()))
        if len(given) == len(finishes) and len(distinct) == 1:
            assignments[column] = next(iter(given.values()))
        else:
            assignments[column] = case(
                *[(Delivery.id == i, literal(value, attribute.type)) for i, value in given.items()],
                else_=attribute,
            )
    moved = session.scalars(
        update(Delivery)
        .where(Delivery.id.in_(list(finishes)), Delivery.status == DeliveryStatus.SENDING)
        .values(lease_until=None, updated_at=now, **assignments)
        .returning(Delivery.id)
        .execution_options(synchronize_session=False)
    ).all()
    return set(moved)
