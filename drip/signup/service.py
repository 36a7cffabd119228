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
from drip.models import Contact, ContactStatus, Enrollment, EnrollmentStatus
from drip.sequences.catalog import SequenceCatalog
from drip.sequences.definition import CONFIRM_STEP
from drip.signup.first_signup import enroll_new_address, new_contact_fields
from drip.signup.request import SignupRequest
from drip.signup.result import SignupResult
from drip.webhooks.events import Event, EventType
from drip.webhooks.outbox import emit

#: A second signup within this time does not send a second confirmation email.
CONFIRMATION_COOLDOWN = timedelta(hours=1)


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
    if consent_for(NEW_CONTACT, None, double_opt_in=sequence.double_opt_in) is Consent.ENROLL:
        # Most signups are of a new address: one statement, unless the address is known.
        new = enroll_new_address(
            session, request, sequence=sequence, now=now, queue_lease=queue_lease
        )
        if new is not None:
            return new
    contact, contact_is_new = _upsert_contact(session, request, now)
    if contact_is_new:  # attach what other apps posted before it was known
        attach_events(session, contact)
    if contact.is_hard_suppressed:
        return SignupResult()
    enrollment, enrollment_is_new = _insert_or_lock(
        session,
        _enrollment_insert(_dialect(session)),
        {"contact_id": contact.id, "sequence_id": sequence.id, "enrolled_at": now},
        select(Enrollment).where(
            Enrollment.contact_id == contact.id, Enrollment.sequence_id == sequence.id
        ),
    )
    consent = consent_for(
        contact,
        None if enrollment_is_new else enrollment.status,
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
        fresh=enrollment_is_new,
        now=now,
        queue_lease=queue_lease,
    )


class Consent(StrEnum):
    """What consent allows for an address and a sequence (`consent_for`)."""

    ENROLL = "enroll"  # enrol it now and plan its first email
    ALREADY = "already"  # it is in the sequence already: nothing changes
    CONFIRM = "confirm"  # only through a confirmation email the subscriber answers
    NEVER = "never"  # bounced or complained: nothing, ever


#: A contact as a new address starts: active, in no sequence.
NEW_CONTACT = Contact(status=ContactStatus.ACTIVE)


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


def _upsert_contact(
    session: Session, request: SignupRequest, now: datetime
) -> tuple[Contact, bool]:
    """The contact of the address, locked, and whether this call inserted it."""
    fields = new_contact_fields(request)
    contact, is_new = _insert_or_lock(
        session,
        _contact_insert(_dialect(session)),
        {**fields, "attributes": {}, "created_at": now, "updated_at": now},
        select(Contact).where(Contact.email_hash == email_hash(request.email)),
    )
    if contact.email is None:  # forgotten earlier: the address comes back with this signup
        contact.email = request.email
    # A known contact keeps what it told us before; a signup only fills what is missing
    # (and leaves the row untouched when nothing is).
    if contact.first_name is None and request.first_name:
        contact.first_name = request.first_name
    if contact.timezone is None and request.timezone:
        contact.timezone = request.timezone
    return contact, is_new


def _insert_or_lock(
    session: Session, insert: Any, values: dict[str, Any], known: Any
) -> tuple[Any, bool]:
    """The row `insert` adds (`ON CONFLICT DO NOTHING ... RETURNING`) and True; else the
    row already there, read by `known` and locked, and False.

    Whether this call inserted the row is what `insert` returning it says, never a
    timestamp: two signups of one address at the same instant write the same times, and
    the second must not take the first's row for its own (it waits on the unique key
    until the first commits, then finds the row and reads it, locked, in a new snapshot).
    """
    options = {"populate_existing": True}
    row = session.scalars(insert, values, execution_options=options).one_or_none()
    if row is not None:
        return row, True
    return session.scalars(known.with_for_update(), execution_options=options).one(), False


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


@cache
def _contact_insert(dialect: str) -> Any:
    """Insert a contact unless its address is known; returns the new row, else nothing.
    Built once per dialect: a signup only binds its values."""
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
    insert = statement.on_conflict_do_nothing(index_elements=["email_hash"]).returning(Contact)
    return select(Contact).from_statement(insert)  # loaded as a query: no bulk-insert path


@cache
def _enrollment_insert(dialect: str) -> Any:
    """Enroll a contact unless it is in the sequence; returns the new row, else nothing."""
    statement = upsert_for(dialect, Enrollment).values(
        status="active",
        contact_id=bindparam("contact_id"),
        sequence_id=bindparam("sequence_id"),
        enrolled_at=bindparam("enrolled_at"),
    )
    insert = statement.on_conflict_do_nothing(
        index_elements=["contact_id", "sequence_id"]
    ).returning(Enrollment)
    return select(Enrollment).from_statement(insert)


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
