"""Unconfirmed signups expire: the request is closed, and a contact that never confirmed
anything is deleted, so an address typed by someone else leaves no trace."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, exists, update
from sqlalchemy.orm import Session

from drip.models import (
    Contact,
    ContactStatus,
    Delivery,
    DeliveryStatus,
    Enrollment,
    EnrollmentStatus,
)
from drip.sequences.definition import CONFIRM_STEP


def expire_unconfirmed(session: Session, *, older_than: datetime, now: datetime) -> int:
    """Close confirmation requests made before `older_than`; return how many."""
    expired = (
        session.execute(
            update(Enrollment)
            .where(
                Enrollment.status == EnrollmentStatus.PENDING,
                Enrollment.confirm_requested_at < older_than,
            )
            .values(status=EnrollmentStatus.CANCELLED, ended_at=now, confirm_requested_at=None)
            .returning(Enrollment.contact_id)
        )
        .scalars()
        .all()
    )
    if not expired:
        return 0
    ever_mailed = exists().where(
        Delivery.contact_id == Contact.id,
        Delivery.status == DeliveryStatus.SENT,
        Delivery.step_id != CONFIRM_STEP,
    )
    still_enrolled = exists().where(
        Enrollment.contact_id == Contact.id, Enrollment.status != EnrollmentStatus.CANCELLED
    )
    session.execute(
        delete(Contact)
        .where(
            Contact.id.in_(set(expired)),
            Contact.status == ContactStatus.ACTIVE,
            ~ever_mailed,
            ~still_enrolled,
        )
        .execution_options(synchronize_session=False)
    )
    return len(expired)
