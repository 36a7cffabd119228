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

Events other apps posted for the address before drip knew it are attached to the contact
here (`drip.events.contact_store.attach_events`); the scheduler's recovery applies them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from functools import cache
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from drip.contacts.identity import email_hash
from drip.db import upsert_for
from drip.deliveries.planning import plan_first, queue_off_schedule
from drip.events.contact_store import attach_events
from drip.models import Contact, Enrollment, EnrollmentStatus
from drip.models.contact import new_public_id
from drip.sequences.catalog import SequenceCatalog
from drip.sequences.definition import CONFIRM_STEP
from drip.signup.request import SignupRequest
from drip.webhooks.events import Event, EventType
from drip.webhooks.outbox import emit

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
    if contact.created_at == now:  # new: attach what other apps posted before it was known
        attach_events(session, contact)
    if contact.is_hard_suppressed:
        return SignupResult()
    # One round trip: insert, or touch the existing row (which also locks it) and return it.
    enrollment: Enrollment = session.scalars(
        _enrollment_upsert(_dialect(session)),
        {"contact_id": contact.id, "sequence_id": sequence.id, "enrolled_at": now},
        execution_options={"populate_existing": True},
    ).one()
    inserted_id = enrollment.id if enrollment.enrolled_at == now else None
    consent = consent_for(
        contact,
        None if inserted_id is not None else enrollment.status,
        double_opt_in=sequence.double_opt_in,
    )
    if consent is not Consent.CONFIRM:
        if consent is not Consent.ENROLL:
            return SignupResult()
        queued = plan_first(
            session,
            enrollment=enrollment,
            contact=contact,
            sequence=sequence,
            now=now,
            queue_lease=queue_lease,
            fresh=True,
        )
        data = {"sequence": sequence.id}
        emit(session, [Event(EventType.CONTACT_SUBSCRIBED, contact.id, now, data)], now=now)
        return SignupResult(delivery_to_enqueue=queued, enrolled=True)
    return _request_confirmation(
        session,
        contact,
        enrollment,
        fresh=inserted_id is not None,
        now=now,
        queue_lease=queue_lease,
    )


class Consent(StrEnum):
    """What consent allows for an address and a sequence (`consent_for`)."""

    ENROLL = "enroll"  # enrol it now and plan its first email
    ALREADY = "already"  # it is in the sequence already: nothing changes
    CONFIRM = "confirm"  # only through a confirmation email the subscriber answers
    NEVER = "never"  # bounced or complained: nothing, ever


def consent_for(
    contact: Contact, enrollment: EnrollmentStatus | None, *, double_opt_in: bool
) -> Consent:
    """The consent rule for enrolling `contact`, whose enrolment in the sequence is in
    status `enrollment` (None: it has none yet). The signup and `drip contacts import`
    both decide by it; an import, which sends no confirmation, refuses where it says
    CONFIRM."""
    if contact.is_hard_suppressed:
        return Consent.NEVER
    left_before = enrollment is EnrollmentStatus.CANCELLED
    if double_opt_in or not contact.is_subscribed or left_before:
        return Consent.CONFIRM
    return Consent.ENROLL if enrollment is None else Consent.ALREADY


def _upsert_contact(session: Session, request: SignupRequest, now: datetime) -> Contact:
    # One round trip: insert, or return the known contact (touching its row, which locks it).
    contact: Contact = session.scalars(
        _contact_upsert(_dialect(session)),
        {
            "public_id": new_public_id(),
            "email": request.email,
            "email_hash": email_hash(request.email),
            "first_name": request.first_name,
            "timezone": request.timezone,
            "source": request.source,
            "attributes": {},
            "created_at": now,
            "updated_at": now,
        },
        execution_options={"populate_existing": True},
    ).one()
    if contact.email is None:  # forgotten earlier: the address comes back with this signup
        contact.email = request.email
    # A known contact keeps what it told us before; a signup only fills what is missing
    # (and leaves the row untouched when nothing is).
    if contact.first_name is None and request.first_name:
        contact.first_name = request.first_name
    if contact.timezone is None and request.timezone:
        contact.timezone = request.timezone
    return contact


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


@cache
def _contact_upsert(dialect: str) -> Any:
    """Insert a contact, or touch the known one; returns the row either way. Built once per
    dialect: a signup only binds its values."""
    columns = (
        "public_id",
        "email",
        "email_hash",
        "first_name",
        "timezone",
        "source",
        "attributes",
        "created_at",
        "updated_at",
    )
    statement = upsert_for(dialect, Contact).values(
        status="active", **{column: bindparam(column) for column in columns}
    )
    upsert = statement.on_conflict_do_update(
        index_elements=["email_hash"], set_={"email_hash": statement.excluded.email_hash}
    ).returning(Contact)
    return select(Contact).from_statement(upsert)  # loaded as a query: no bulk-insert path


@cache
def _enrollment_upsert(dialect: str) -> Any:
    """Enroll a contact, or touch its existing enrollment; returns the row either way."""
    statement = upsert_for(dialect, Enrollment).values(
        status="active",
        contact_id=bindparam("contact_id"),
        sequence_id=bindparam("sequence_id"),
        enrolled_at=bindparam("enrolled_at"),
    )
    upsert = statement.on_conflict_do_update(
        index_elements=["contact_id", "sequence_id"],
        set_={"sequence_id": statement.excluded.sequence_id},
    ).returning(Enrollment)
    return select(Enrollment).from_statement(upsert)


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
