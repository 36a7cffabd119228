"""A contact's data on request: everything stored about it, or its erasure.

`forget_contact` erases every personal field and the provider payloads that repeat the
address, and keeps the row only as a hashed suppression entry: the address is never
mailed again unless its owner signs up and confirms.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from drip.contacts.lifecycle import lock_contact, stop_contact
from drip.models import (
    AuditEntry,
    Contact,
    ContactStatus,
    Delivery,
    Download,
    Enrollment,
    ProviderEvent,
)
from drip.signup.request import email_hash, normalize_email


def find_contact(session: Session, address: str, *, lock: bool = False) -> Contact | None:
    """The contact for an address, by its hash (so a forgotten one is found too)."""
    hashed = email_hash(normalize_email(address))
    if lock:
        return lock_contact(session, email_hash=hashed)
    return session.scalars(select(Contact).where(Contact.email_hash == hashed)).one_or_none()


def _row(obj: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for column in obj.__table__.columns:
        value = getattr(obj, column.key)
        out[column.key] = (
            value.isoformat()
            if isinstance(value, datetime)
            else (value.value if hasattr(value, "value") else value)
        )
    return out


def export_contact(session: Session, contact: Contact) -> dict[str, Any]:
    """Everything stored about `contact`, as JSON-ready data."""
    deliveries = session.scalars(
        select(Delivery).where(Delivery.contact_id == contact.id).order_by(Delivery.id)
    ).all()
    delivery_ids = [d.id for d in deliveries]
    return {
        "contact": _row(contact),
        "enrollments": [
            _row(e)
            for e in session.scalars(
                select(Enrollment)
                .where(Enrollment.contact_id == contact.id)
                .order_by(Enrollment.id)
            )
        ],
        "deliveries": [_row(d) for d in deliveries],
        "provider_events": [
            _row(e)
            for e in session.scalars(
                select(ProviderEvent)
                .where(ProviderEvent.delivery_id.in_(delivery_ids))
                .order_by(ProviderEvent.id)
            )
        ],
        "downloads": [
            _row(d)
            for d in session.scalars(
                select(Download).where(Download.contact_id == contact.id).order_by(Download.id)
            )
        ],
        "audit": [
            _row(a)
            for a in session.scalars(
                select(AuditEntry)
                .where(AuditEntry.target.in_([contact.public_id, contact.email or ""]))
                .order_by(AuditEntry.id)
            )
        ],
    }


def forget_contact(session: Session, contact: Contact, *, now: datetime) -> None:
    """Erase the contact's personal data; keep its hash so it is never mailed again."""
    stop_contact(
        session, contact, status=ContactStatus.FORGOTTEN, reason="forgotten on request", now=now
    )
    if contact.email:
        session.execute(
            update(AuditEntry)
            .where(AuditEntry.target == contact.email)
            .values(target=contact.email_hash)
        )
    contact.email = None
    contact.first_name = None
    contact.timezone = None
    contact.source = None
    contact.attributes = {}
    delivery_ids = select(Delivery.id).where(Delivery.contact_id == contact.id).scalar_subquery()
    # Provider payloads repeat the address: keep only what the funnel counts.
    for event in session.scalars(
        select(ProviderEvent).where(ProviderEvent.delivery_id.in_(delivery_ids))
    ):
        event.payload = {"event": event.event}
