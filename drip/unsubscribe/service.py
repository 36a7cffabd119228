"""`unsubscribe_contact`: one transaction after which no email leaves for the contact.

It locks the contact row for update: a send in flight holds that row for share
(`drip.send.sender`), so the unsubscribe waits for it to finish, and every send that
starts later sees the new status. Everything still scheduled or queued is cancelled.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from drip.models import (
    Contact,
    ContactStatus,
    Delivery,
    DeliveryStatus,
    Enrollment,
    EnrollmentStatus,
)


def stop_contact(
    session: Session, contact: Contact, *, status: ContactStatus, reason: str, now: datetime
) -> int:
    """Set the contact's status and cancel its pending deliveries and active enrollments.

    Returns how many deliveries were cancelled. The caller holds the contact row lock.
    """
    # A bounced or complaining address keeps that status whatever happens next.
    stronger = status in (ContactStatus.SUPPRESSED, ContactStatus.FORGOTTEN)
    if not contact.is_hard_suppressed and (contact.status is ContactStatus.ACTIVE or stronger):
        contact.status = status
        contact.status_reason = reason
        contact.status_changed_at = now
    return cancel_pending(session, contact.id, reason=f"contact {status.value}: {reason}", now=now)


def cancel_pending(
    session: Session, contact_id: int, *, reason: str, now: datetime, sequence_id: str | None = None
) -> int:
    """Cancel the contact's scheduled and queued deliveries and end its open enrollments
    (of one sequence, or all); return how many deliveries were cancelled."""
    deliveries = [
        Delivery.contact_id == contact_id,
        Delivery.status.in_([DeliveryStatus.SCHEDULED, DeliveryStatus.QUEUED]),
    ]
    enrollments = [
        Enrollment.contact_id == contact_id,
        Enrollment.status.in_([EnrollmentStatus.ACTIVE, EnrollmentStatus.PENDING]),
    ]
    if sequence_id is not None:
        deliveries.append(Delivery.sequence_id == sequence_id)
        enrollments.append(Enrollment.sequence_id == sequence_id)
    cancelled: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        update(Delivery)
        .where(*deliveries)
        .values(status=DeliveryStatus.CANCELLED, lease_until=None, updated_at=now, error=reason)
    )
    session.execute(
        update(Enrollment)
        .where(*enrollments)
        .values(status=EnrollmentStatus.CANCELLED, ended_at=now)
    )
    return int(cancelled.rowcount or 0)


def lock_contact(session: Session, **where: object) -> Contact | None:
    """The contact matching `where`, locked for update (PostgreSQL) until the transaction ends."""
    query = select(Contact).filter_by(**where).with_for_update()
    return session.scalars(query).one_or_none()


def unsubscribe_contact(session: Session, public_id: str, *, reason: str, now: datetime) -> bool:
    """Unsubscribe the contact with `public_id`; False when there is no such contact."""
    contact = lock_contact(session, public_id=public_id)
    if contact is None:
        return False
    stop_contact(session, contact, status=ContactStatus.UNSUBSCRIBED, reason=reason, now=now)
    return True


def leave_sequence(session: Session, public_id: str, sequence_id: str, *, now: datetime) -> bool:
    """Stop one sequence for the contact, who stays subscribed to any other."""
    contact = lock_contact(session, public_id=public_id)
    if contact is None:
        return False
    cancel_pending(
        session,
        contact.id,
        reason="left the sequence by the unsubscribe page",
        now=now,
        sequence_id=sequence_id,
    )
    return True
