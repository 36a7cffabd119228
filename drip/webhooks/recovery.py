"""The scheduler's job for outbound webhooks: enqueue rows whose retry is due or whose
message was lost.

A row is taken when it is pending, due, not held by a sender, and either was not
enqueued since it became due (a retry's backoff ran out, a replay) or was enqueued more
than `REQUEUE_AFTER` ago without being attempted (Redis lost the message, a worker was
killed with it). `FOR UPDATE SKIP LOCKED` lets several schedulers run it at once.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from drip.dispatch.recovery import Recovery, RecoveryJob
from drip.models import WebhookEvent, WebhookStatus

#: A row enqueued this long ago and still pending and unattempted lost its message.
REQUEUE_AFTER = timedelta(seconds=60)

#: At most this many batches per run, so the other jobs and the sends keep their turn.
MAX_BATCHES = 10


def take_due(session: Session, *, now: datetime, limit: int) -> list[int]:
    """Mark due, unheld, not-yet-enqueued rows as enqueued now; return their ids."""
    due = (
        select(WebhookEvent.id)
        .where(
            WebhookEvent.status == WebhookStatus.PENDING,
            WebhookEvent.next_attempt_at <= now,
            or_(WebhookEvent.claimed_until.is_(None), WebhookEvent.claimed_until < now),
            or_(
                WebhookEvent.enqueued_at.is_(None),
                WebhookEvent.enqueued_at < WebhookEvent.next_attempt_at,
                WebhookEvent.enqueued_at < now - REQUEUE_AFTER,
            ),
        )
        .order_by(WebhookEvent.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    ids = list(session.scalars(due))
    if ids:
        session.execute(
            update(WebhookEvent)
            .where(WebhookEvent.id.in_(ids))
            .values(enqueued_at=now)
            .execution_options(synchronize_session=False)
        )
    return ids


def enqueue_due_webhooks_job(enqueue: Callable[[list[int]], None]) -> RecoveryJob:
    """The recovery job `enqueue_due_webhooks`, enqueueing through `enqueue`."""

    def enqueue_due_webhooks(recovery: Recovery) -> dict[str, int]:
        """Enqueue due webhook rows after the transaction marking them commits."""
        taken = 0
        for _ in range(MAX_BATCHES):
            with recovery.sessions() as session, session.begin():
                ids = take_due(session, now=recovery.now, limit=recovery.batch_size)
            if ids:
                enqueue(ids)  # a failure is the job's: the rows are taken again later
            taken += len(ids)
            if len(ids) < recovery.batch_size:
                break
        return {"webhooks_enqueued": taken}

    return ("enqueue_due_webhooks", enqueue_due_webhooks)
