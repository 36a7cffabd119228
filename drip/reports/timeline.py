"""Everything that happened to one subscriber, in order: `drip contacts show` and `/admin`."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from drip.models import Contact, Delivery, Download, Enrollment, ProviderEvent


@dataclass
class Timeline:
    """Everything that happened to one contact, oldest first, as `drip contacts show` prints it."""

    contact: dict[str, Any]
    enrollments: list[dict[str, Any]] = field(default_factory=list)
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The timeline as JSON-ready values."""
        return {
            "contact": self.contact,
            "enrollments": self.enrollments,
            "deliveries": self.deliveries,
            "events": self.events,
        }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def contact_timeline(session: Session, contact: Contact) -> Timeline:
    """The contact's signup, enrollments, deliveries, provider events and status, in order."""
    timeline = Timeline(
        contact={
            "email": contact.email,
            "first_name": contact.first_name,
            "timezone": contact.timezone,
            "source": contact.source,
            "signed_up_at": _iso(contact.created_at),
            "status": contact.status.value,
            "status_reason": contact.status_reason,
            "status_changed_at": _iso(contact.status_changed_at),
        }
    )
    for enrollment in session.scalars(
        select(Enrollment).where(Enrollment.contact_id == contact.id).order_by(Enrollment.id)
    ):
        timeline.enrollments.append(
            {
                "sequence": enrollment.sequence_id,
                "status": enrollment.status.value,
                "enrolled_at": _iso(enrollment.enrolled_at),
                "ended_at": _iso(enrollment.ended_at),
            }
        )
    deliveries = session.scalars(
        select(Delivery)
        .where(Delivery.contact_id == contact.id)
        .order_by(Delivery.due_at, Delivery.id)
    ).all()
    for d in deliveries:
        timeline.deliveries.append(
            {
                "id": d.id,
                "sequence": d.sequence_id,
                "step": d.step_id,
                "status": d.status.value,
                "resend": d.resend,
                "due_at": _iso(d.due_at),
                "sent_at": _iso(d.sent_at),
                "provider_message_id": d.provider_message_id,
                "sequence_version": d.sequence_version,
                "attempts": d.attempts,
                "note": d.error,
            }
        )
    events = session.scalars(
        select(ProviderEvent)
        .where(ProviderEvent.delivery_id.in_([d.id for d in deliveries]))
        .order_by(ProviderEvent.occurred_at, ProviderEvent.id)
    ).all()
    steps = {d.id: d.step_id for d in deliveries}
    for e in events:
        timeline.events.append(
            {
                "event": e.event,
                "at": _iso(e.occurred_at or e.received_at),
                "delivery_id": e.delivery_id,
                "step": steps.get(e.delivery_id or 0),
                "detail": e.payload.get("reason") or e.payload.get("url") or "",
            }
        )
    for download in session.scalars(select(Download).where(Download.contact_id == contact.id)):
        timeline.events.append(
            {
                "event": "download",
                "at": _iso(download.downloaded_at),
                "delivery_id": None,
                "step": None,
                "detail": download.sequence_id,
            }
        )
    timeline.events.sort(key=lambda e: e["at"] or "")
    return timeline
