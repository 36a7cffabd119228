"""`enroll_contact`: the one transaction behind `POST /signups` and `drip enroll`.

The caller gets nothing back that tells a new address from a known one. A step due at
once is inserted as queued so the caller can enqueue it right after commit; if that
enqueue fails (Redis down) the row is handed back to the scheduler, so nothing is lost.

Who gets what:
- a new address, in a sequence without double opt-in: enrolled, step 1 planned;
- a new address, in a sequence with `double_opt_in: true`: one confirmation email;
- an address that unsubscribed, was forgotten, or left this sequence: never re-enrolled
  silently, only through a confirmation email;
- an address that bounced or reported spam: nothing, ever;
- an address already in the sequence: nothing (no second enrollment, no duplicate).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from drip.db import upsert_statement
from drip.models import Contact, Enrollment, EnrollmentStatus
from drip.models.contact import new_public_id
from drip.schedule.store import lease, queue_off_schedule, schedule_next
from drip.sequences.catalog import SequenceCatalog
from drip.sequences.definition import CONFIRM_STEP
from drip.signup.request import SignupRequest, email_hash

#: A second signup within this time does not send a second confirmation email.
CONFIRMATION_COOLDOWN = timedelta(hours=1)


@dataclass(frozen=True)
class SignupResult:
    """What the caller must do after commit: enqueue this delivery, if any."""

    delivery_to_enqueue: int | None = None
    enrolled: bool = False
    confirmation_sent: bool = False


def enroll_contact(
    session: Session,
    request: SignupRequest,
    *,
    catalog: SequenceCatalog,
    default_sequence: str,
    now: datetime,
    queue_lease: float,
) -> SignupResult:
    """Upsert the contact, enroll it once in the sequence and plan its first email."""
    sequence = catalog.get(request.sequence or default_sequence).definition
    contact = _upsert_contact(session, request, now)
    if contact.is_hard_suppressed:
        return SignupResult()
    # One round trip: insert, or touch the existing row (which also locks it) and return it.
    statement = upsert_statement(session, Enrollment).values(
        contact_id=contact.id, sequence_id=sequence.id, status="active", enrolled_at=now
    )
    enrollment: Enrollment = session.scalars(
        statement.on_conflict_do_update(
            index_elements=["contact_id", "sequence_id"],
            set_={"sequence_id": statement.excluded.sequence_id},
        ).returning(Enrollment),
        execution_options={"populate_existing": True},
    ).one()
    inserted_id = enrollment.id if enrollment.enrolled_at == now else None
    left_before = inserted_id is None and enrollment.status is EnrollmentStatus.CANCELLED
    if not (sequence.double_opt_in or not contact.is_subscribed or left_before):
        if inserted_id is None:
            return SignupResult()
        delivery = schedule_next(
            session,
            enrollment=enrollment,
            contact=contact,
            sequence=sequence,
            after=now,
            received=set(),
            queue_now_until=lease(now, queue_lease),
            now=now,
            fresh=True,
        )
        queued = delivery.id if delivery is not None and delivery.lease_until is not None else None
        return SignupResult(delivery_to_enqueue=queued, enrolled=True)
    return _request_confirmation(
        session,
        contact,
        enrollment,
        fresh=inserted_id is not None,
        now=now,
        queue_lease=queue_lease,
    )


def _upsert_contact(session: Session, request: SignupRequest, now: datetime) -> Contact:
    hashed = email_hash(request.email)
    statement = upsert_statement(session, Contact).values(
        public_id=new_public_id(),
        email=request.email,
        email_hash=hashed,
        first_name=request.first_name,
        timezone=request.timezone,
        source=request.source,
        attributes={},
        status="active",
        created_at=now,
        updated_at=now,
    )
    # One round trip: insert, or return the known contact (touching its row, which locks it).
    contact: Contact = session.scalars(
        statement.on_conflict_do_update(
            index_elements=["email_hash"], set_={"email_hash": statement.excluded.email_hash}
        ).returning(Contact),
        execution_options={"populate_existing": True},
    ).one()
    if contact.email is None:  # forgotten earlier: the address comes back with this signup
        contact.email = request.email
    # A known contact keeps what it told us before; a signup only fills what is missing.
    contact.first_name = contact.first_name or request.first_name
    contact.timezone = contact.timezone or request.timezone
    return contact


def _request_confirmation(
    session: Session,
    contact: Contact,
    enrollment: Enrollment,
    *,
    fresh: bool,
    now: datetime,
    queue_lease: float,
) -> SignupResult:
    """Send one confirmation email, unless the contact is already in or was just asked."""
    already_in = enrollment.status in (EnrollmentStatus.ACTIVE, EnrollmentStatus.COMPLETED)
    if not fresh and contact.is_subscribed and already_in:
        return SignupResult()
    recently_asked = (
        enrollment.status is EnrollmentStatus.PENDING
        and enrollment.confirm_requested_at is not None
        and now - enrollment.confirm_requested_at < CONFIRMATION_COOLDOWN
    )
    if recently_asked:
        return SignupResult()
    enrollment.status = EnrollmentStatus.PENDING
    enrollment.confirm_requested_at = now
    enrollment.ended_at = None
    delivery_id = queue_off_schedule(
        session, enrollment, CONFIRM_STEP, now=now, queue_lease=queue_lease, resend=False
    )
    return SignupResult(delivery_to_enqueue=delivery_id, confirmation_sent=True)
