"""What was sent to whom, and sending it again: `drip webhooks deliveries` and `replay`.

A replay keeps the event's id (receivers deduplicate by it), gives the row a fresh
three-day retry window and makes it due now; only rows of enabled endpoints are
replayed; the scheduler's recovery job enqueues them within seconds, so a replay needs
no Redis. Each replay is audited.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from drip.audit import record_audit
from drip.errors import OperationRefused
from drip.models import WebhookEndpoint, WebhookEvent, WebhookStatus
from drip.webhooks.retries import RETRY_WINDOW


@dataclass(frozen=True)
class DeliveryView:
    """One outbox row as `drip webhooks deliveries` shows it."""

    id: int
    event_id: str
    event_type: str
    url: str
    status: str
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None


def list_deliveries(session: Session, *, failed_only: bool, limit: int) -> list[DeliveryView]:
    """The newest outbox rows first (only failed ones with `failed_only`)."""
    query = (
        select(WebhookEvent, WebhookEndpoint.url)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookEvent.endpoint_id)
        .order_by(WebhookEvent.id.desc())
        .limit(limit)
    )
    if failed_only:
        query = query.where(WebhookEvent.status == WebhookStatus.FAILED)
    return [
        DeliveryView(
            id=row.id,
            event_id=row.event_id,
            event_type=row.event_type,
            url=url,
            status=row.status.value,
            attempts=row.attempts,
            created_at=row.created_at,
            next_attempt_at=row.next_attempt_at if row.status is WebhookStatus.PENDING else None,
            last_status_code=row.last_status_code,
            last_error=row.last_error,
        )
        for row, url in session.execute(query)
    ]


def replay(
    session: Session,
    *,
    ident: str | None = None,
    since: datetime | None = None,
    include_delivered: bool = False,
    operator: str,
    now: datetime,
    reason: str | None = None,
) -> list[int]:
    """Make rows due again: one row (its number), one event (`evt_...`, every endpoint),
    or every failed row created since `since` (delivered ones too with
    `include_delivered`). Returns the row ids; the scheduler enqueues them within a tick."""
    if (ident is None) == (since is None):
        raise OperationRefused("give either an id or --since, not both")
    query = (
        select(WebhookEvent.id)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookEvent.endpoint_id)
        .where(WebhookEndpoint.enabled)
    )
    if ident is not None:
        if ident.isdigit():
            query = query.where(WebhookEvent.id == int(ident))
        else:
            query = query.where(WebhookEvent.event_id == ident)
    else:
        statuses = [WebhookStatus.FAILED] + [WebhookStatus.DELIVERED] * include_delivered
        query = query.where(WebhookEvent.created_at >= since, WebhookEvent.status.in_(statuses))
    ids = list(session.scalars(query.order_by(WebhookEvent.id)))
    if ident is not None and not ids:
        raise OperationRefused(
            f"no webhook delivery {ident!r} to an enabled endpoint (see drip webhooks deliveries)"
        )
    if ids:
        session.execute(
            update(WebhookEvent)
            .where(WebhookEvent.id.in_(ids))
            .values(
                status=WebhookStatus.PENDING,
                next_attempt_at=now,
                give_up_at=now + RETRY_WINDOW,
                enqueued_at=None,  # the scheduler's next recovery run enqueues them
                claimed_until=None,
            )
            .execution_options(synchronize_session=False)
        )
    record_audit(
        session,
        action="webhooks.replay",
        operator=operator,
        now=now,
        reason=reason,
        target=ident,
        details={
            "rows": len(ids),
            "since": since.isoformat() if since else None,
            "include_delivered": include_delivered,
        },
    )
    return ids
