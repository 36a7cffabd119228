"""`drip retry`: put failed deliveries back in the queue, in chunks, idempotently.

A retried row starts its attempts afresh. Running the same retry twice re-queues nothing
the second time: a row is no longer `failed` once it is queued.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from drip.audit import record_audit
from drip.db import transaction
from drip.models import Delivery, DeliveryStatus
from drip.schedule.store import lease

#: Statuses an operator may retry: a cancelled delivery was the subscriber's choice.
RETRYABLE = (DeliveryStatus.FAILED, DeliveryStatus.SKIPPED)

#: Rows re-queued per transaction.
CHUNK = 500


@dataclass(frozen=True)
class RetryFilter:
    status: DeliveryStatus = DeliveryStatus.FAILED
    since: datetime | None = None
    sequence: str | None = None
    step: str | None = None

    def conditions(self) -> list[ColumnElement[bool]]:
        where: list[ColumnElement[bool]] = [Delivery.status == self.status]
        if self.since is not None:
            where.append(Delivery.updated_at >= self.since)
        if self.sequence is not None:
            where.append(Delivery.sequence_id == self.sequence)
        if self.step is not None:
            where.append(Delivery.step_id == self.step)
        return where


def count_matching(session: Session, selection: RetryFilter) -> int:
    return (
        session.scalar(select(func.count()).select_from(Delivery).where(*selection.conditions()))
        or 0
    )


def requeue_chunks(
    sessions: sessionmaker[Session],
    selection: RetryFilter,
    *,
    reason: str,
    operator: str,
    now: datetime,
    queue_lease: float,
) -> Iterator[list[int]]:
    """Re-queue matching rows chunk by chunk, yielding each chunk's ids after it commits."""
    while True:
        with transaction(sessions) as session:
            chunk = (
                select(Delivery.id)
                .where(*selection.conditions())
                .limit(CHUNK)
                .with_for_update(skip_locked=True)
                .scalar_subquery()
            )
            ids = list(
                session.scalars(
                    update(Delivery)
                    .where(Delivery.id.in_(chunk), *selection.conditions())
                    .values(
                        status=DeliveryStatus.QUEUED,
                        attempts=0,
                        lease_until=lease(now, queue_lease),
                        due_at=now,
                        updated_at=now,
                        error=None,
                    )
                    .returning(Delivery.id)
                )
            )
            if ids:
                record_audit(
                    session,
                    action="delivery.retry",
                    operator=operator,
                    now=now,
                    reason=reason,
                    details={"delivery_ids": ids, "status": selection.status.value},
                )
        if not ids:
            return
        yield ids
