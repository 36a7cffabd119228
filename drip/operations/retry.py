"""`drip retry`: put failed deliveries back in the queue, in chunks, idempotently.

A retried row starts its attempts afresh. Running the same retry twice re-queues nothing
the second time: a row is no longer `failed` once it is queued.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session, sessionmaker

from drip.audit import record_audit
from drip.db import transaction
from drip.deliveries.moves import never_retried, operator_retry
from drip.deliveries.transitions import Move, transition
from drip.models import Delivery, DeliveryStatus

#: Statuses an operator may retry: a cancelled delivery was the subscriber's choice.
RETRYABLE = transition(Move.OPERATOR_RETRY).sources

#: Rows re-queued per transaction.
CHUNK = 500


@dataclass(frozen=True)
class RetryFilter:
    """Which rows `drip retry` re-queues: a status, and perhaps a window, a sequence, a step."""

    status: DeliveryStatus = DeliveryStatus.FAILED
    since: datetime | None = None
    sequence: str | None = None
    step: str | None = None

    def conditions(self) -> list[ColumnElement[bool]]:
        """The filter as SQL conditions on `deliveries` (rows a retry never moves, such as
        those reported processed, never match: see `moves.never_retried`)."""
        where: list[ColumnElement[bool]] = [Delivery.status == self.status, ~never_retried()]
        if self.since is not None:
            where.append(Delivery.updated_at >= self.since)
        if self.sequence is not None:
            where.append(Delivery.sequence_id == self.sequence)
        if self.step is not None:
            where.append(Delivery.step_id == self.step)
        return where


def count_matching(session: Session, selection: RetryFilter) -> int:
    """How many deliveries the filter matches now (for `--dry-run` and the progress bar)."""
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
            ids = operator_retry(
                session, selection.conditions(), now=now, queue_lease=queue_lease, limit=CHUNK
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
