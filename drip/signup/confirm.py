"""Confirming a signup: the click that starts a double opt-in sequence or brings a contact back.

A returning subscriber who already had email 1 gets it again (a resend: it carries the
template they asked for) and continues after the last step they received, with delays
counted from the confirmation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from drip.contacts.lifecycle import lock_contact
from drip.deliveries.planning import plan_following, queue_off_schedule
from drip.deliveries.progress import read_progress
from drip.models import ContactStatus, Enrollment, EnrollmentStatus
from drip.sequences.definition import Sequence


@dataclass
class ConfirmResult:
    confirmed: bool
    to_enqueue: list[int] = field(default_factory=list)


def confirm_enrollment(
    session: Session, *, public_id: str, sequence: Sequence, now: datetime, queue_lease: float
) -> ConfirmResult:
    """Activate the contact's pending enrollment in `sequence`; idempotent once confirmed."""
    contact = lock_contact(session, public_id=public_id)
    if contact is None or contact.email is None or contact.is_hard_suppressed:
        return ConfirmResult(False)
    enrollment = session.scalars(
        select(Enrollment).where(
            Enrollment.contact_id == contact.id, Enrollment.sequence_id == sequence.id
        )
    ).one_or_none()
    if enrollment is None:
        return ConfirmResult(False)
    if enrollment.status is EnrollmentStatus.ACTIVE and contact.is_subscribed:
        return ConfirmResult(True)
    if enrollment.status is not EnrollmentStatus.PENDING:
        return ConfirmResult(False)  # expired, or left again since
    contact.status, contact.status_reason, contact.status_changed_at = (
        ContactStatus.ACTIVE,
        "confirmed signup",
        now,
    )
    enrollment.status, enrollment.confirm_requested_at = EnrollmentStatus.ACTIVE, None
    result = ConfirmResult(True)
    received = read_progress(session, enrollment.id).passed
    first = sequence.steps[0]
    if first.id in received:
        result.to_enqueue.append(
            queue_off_schedule(
                session, enrollment, first.id, now=now, queue_lease=queue_lease, resend=True
            )
        )
    nxt = plan_following(
        session,
        enrollment=enrollment,
        contact=contact,
        sequence=sequence,
        now=now,
        queue_lease=queue_lease,
        sent_at=now,
    )
    if nxt is not None:
        result.to_enqueue.append(nxt)
    return result
