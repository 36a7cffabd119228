"""A contact's lifecycle: lock it, stop it, end its enrollments.

Every change that must stop email to a contact (an unsubscribe, leaving one sequence, a
bounce or complaint, erasure) locks the contact's row for update first. A send in
flight holds that row for share (`drip.send.stores.sql`), so the change waits for the
batch to finish, and every send that starts later sees it: nothing leaves after the
change commits.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from drip.deliveries.moves import cancel_pending
from drip.models import Contact, ContactStatus, Enrollment, EnrollmentStatus
from drip.models.contact import HARD_SUPPRESSIONS
from drip.webhooks.events import Event, EventType
from drip.webhooks.outbox import emit


def lock_contact(session: Session, **where: object) -> Contact | None:
    """The contact matching `where`, locked for update (PostgreSQL) until the transaction ends."""
    query = select(Contact).filter_by(**where).with_for_update()
    return session.scalars(query).one_or_none()


def stop_contact(
    session: Session, contact: Contact, *, status: ContactStatus, reason: str, now: datetime
) -> int:
    """Set the contact's status and end everything pending for it; return how many
    deliveries were cancelled. The caller holds the contact row lock."""
    # A bounced or complaining address keeps that status whatever happens next.
    stronger = status in (ContactStatus.SUPPRESSED, ContactStatus.FORGOTTEN)
    if not contact.is_hard_suppressed and (contact.status is ContactStatus.ACTIVE or stronger):
        if contact.status is not status:
            _report_stop(session, contact, status=status, reason=reason, now=now)
        contact.status = status
        contact.status_reason = reason
        contact.status_changed_at = now
    return end_enrollments(session, contact.id, reason=f"contact {status.value}: {reason}", now=now)


def _report_stop(
    session: Session, contact: Contact, *, status: ContactStatus, reason: str, now: datetime
) -> None:
    """Tell webhook receivers the contact unsubscribed or was suppressed: the kind of
    reason only, never its text (a bounce's text can quote the address)."""
    if status is ContactStatus.UNSUBSCRIBED:
        event = Event(EventType.CONTACT_UNSUBSCRIBED, contact.id, now)
    elif status is ContactStatus.SUPPRESSED:
        kind = reason.split(":", 1)[0].strip()
        data = {"reason": kind if kind in HARD_SUPPRESSIONS else "other"}
        event = Event(EventType.CONTACT_SUPPRESSED, contact.id, now, data)
    else:
        return
    emit(session, [event], now=now)


def end_enrollments(
    session: Session,
    contact_id: int,
    *,
    reason: str,
    now: datetime,
    sequence_id: str | None = None,
    status: EnrollmentStatus = EnrollmentStatus.CANCELLED,
    finished_too: bool = False,
) -> int:
    """Cancel the contact's pending deliveries and end its open enrollments (of one
    sequence, or all) with `status` (cancelled, or converted by a goal); return how many
    deliveries were cancelled. With `finished_too`, a finished run (completed, converted)
    becomes cancelled too, so that not even a resend reaches a subscriber who left. The
    caller holds the contact row lock."""
    cancelled = cancel_pending(session, contact_id, reason=reason, now=now, sequence_id=sequence_id)
    ending = [EnrollmentStatus.ACTIVE, EnrollmentStatus.PENDING]
    if finished_too:
        ending += [EnrollmentStatus.COMPLETED, EnrollmentStatus.CONVERTED]
    enrollments = [Enrollment.contact_id == contact_id, Enrollment.status.in_(ending)]
    if sequence_id is not None:
        enrollments.append(Enrollment.sequence_id == sequence_id)
    session.execute(update(Enrollment).where(*enrollments).values(status=status, ended_at=now))
    return cancelled
