"""What each provider event does.

- bounce (except `type: blocked`), dropped, spamreport: the contact is suppressed with the
  reason, and everything pending is cancelled; it is never mailed again.
- unsubscribe, group_unsubscribe: the contact is unsubscribed; everything pending is cancelled.
- processed: recorded; the scheduler uses it to settle a send a dead worker left in `sending`.
- delivered, deferred, open, click, blocked bounces: recorded on the delivery, for the funnel.

`delivered`, `bounce` and `dropped` are also told to webhook receivers (`email.delivered`,
`email.bounced`), in the same transaction, in one outbox statement per batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from drip.contacts.identity import email_hash
from drip.contacts.lifecycle import lock_contact, stop_contact
from drip.models import Contact, ContactStatus, Delivery, ProviderEvent
from drip.webhooks.events import Event, EventType
from drip.webhooks.outbox import emit

log = structlog.get_logger(__name__)

SUPPRESSING = frozenset({"bounce", "dropped", "spamreport"})
UNSUBSCRIBING = frozenset({"unsubscribe", "group_unsubscribe"})

#: Provider events that webhook receivers hear about, as the event type they hear.
REPORTED = {
    "delivered": EventType.EMAIL_DELIVERED,
    "bounce": EventType.EMAIL_BOUNCED,
    "dropped": EventType.EMAIL_BOUNCED,
}


def apply_events(session: Session, event_ids: Sequence[int], *, now: datetime) -> int:
    """Apply the stored events not yet processed; return how many were applied."""
    events = session.scalars(
        select(ProviderEvent)
        .where(ProviderEvent.id.in_(event_ids), ProviderEvent.processed_at.is_(None))
        .order_by(ProviderEvent.id)
        .with_for_update(skip_locked=True)
    ).all()
    for event in events:
        _apply(session, event, now)
        event.processed_at = now
    _report(session, events, now)
    return len(events)


def _report(session: Session, events: Sequence[ProviderEvent], now: datetime) -> None:
    """Put `email.delivered` and `email.bounced` in the webhook outbox, for events that
    name a delivery this database has. The provider's reason text is left out: it can
    quote the address."""
    reported = [e for e in events if e.event in REPORTED and e.delivery_id is not None]
    if not reported:
        return
    rows = {
        row.id: row
        for row in session.execute(
            select(Delivery.id, Delivery.contact_id, Delivery.sequence_id, Delivery.step_id).where(
                Delivery.id.in_({e.delivery_id for e in reported})
            )
        )
    }
    outgoing = []
    for event in reported:
        row = rows.get(event.delivery_id)
        if row is None:
            continue
        data: dict[str, object] = {
            "delivery_id": row.id,
            "sequence": row.sequence_id,
            "step": row.step_id,
        }
        if event.event != "delivered":
            data["bounce_type"] = (
                "dropped"
                if event.event == "dropped"
                else str(event.payload.get("type") or "bounce")
            )
        outgoing.append(
            Event(REPORTED[event.event], row.contact_id, event.occurred_at or now, data)
        )
    emit(session, outgoing, now=now)


def unprocessed_events(session: Session, *, older_than: datetime, limit: int) -> list[int]:
    """Events stored but never applied (the processing message was lost)."""
    return list(
        session.scalars(
            select(ProviderEvent.id)
            .where(ProviderEvent.processed_at.is_(None), ProviderEvent.received_at < older_than)
            .limit(limit)
        )
    )


def _apply(session: Session, event: ProviderEvent, now: datetime) -> None:
    kind = event.event
    bounce_type = str(event.payload.get("type") or "")
    if kind in SUPPRESSING and not (kind == "bounce" and bounce_type == "blocked"):
        status = ContactStatus.SUPPRESSED
    elif kind in UNSUBSCRIBING:
        status = ContactStatus.UNSUBSCRIBED
    else:
        return  # recorded for the funnel; `processed` also settles a dead worker's send (scheduler)
    contact = _contact_of(session, event)
    if contact is None:
        log.info("events.no_contact", event_type=kind, event_id=event.id)
        return
    detail = event.payload.get("reason") or event.payload.get("type") or ""
    reason = f"{kind}: {detail}".rstrip(": ")[:500]
    cancelled = stop_contact(session, contact, status=status, reason=reason, now=now)
    log.info("events.contact_stopped", event_type=kind, contact_id=contact.id, cancelled=cancelled)


def _contact_of(session: Session, event: ProviderEvent) -> Contact | None:
    if event.delivery_id is not None:
        contact_id = session.scalar(
            select(Delivery.contact_id).where(Delivery.id == event.delivery_id)
        )
        if contact_id is not None:
            return lock_contact(session, id=contact_id)
    address = event.payload.get("email")
    if isinstance(address, str) and address:
        return lock_contact(session, email_hash=email_hash(address.strip().lower()))
    return None
