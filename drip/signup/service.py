"""`enroll_contact`: the one transaction behind `POST /signups` and `drip enroll`.

The caller gets nothing back that tells a new address from a known one. A step due at
once is inserted as queued so the caller can enqueue it right after commit; if that
enqueue fails (Redis down) the row is handed back to the scheduler, so nothing is lost.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from drip.db import upsert_statement
from drip.models import Contact, Enrollment
from drip.models.contact import new_public_id
from drip.schedule.store import lease, schedule_next
from drip.sequences.catalog import SequenceCatalog
from drip.signup.request import SignupRequest, email_hash


@dataclass(frozen=True)
class SignupResult:
    """What the caller must do after commit: enqueue this delivery, if any."""

    delivery_to_enqueue: int | None = None
    enrolled: bool = False


def enroll_contact(
    session: Session,
    request: SignupRequest,
    *,
    catalog: SequenceCatalog,
    default_sequence: str,
    now: datetime,
    queue_lease: float,
) -> SignupResult:
    """Upsert the contact, enroll it once in the sequence and plan its first step."""
    sequence = catalog.get(request.sequence or default_sequence).definition
    hashed = email_hash(request.email)
    session.execute(
        upsert_statement(session, Contact)
        .values(
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
        .on_conflict_do_nothing(index_elements=["email_hash"])
    )
    contact = session.scalars(select(Contact).where(Contact.email_hash == hashed)).one()
    if contact.email is None:  # forgotten earlier: the address returns with this signup
        contact.email = request.email
    # A known contact keeps what it told us before; a signup only fills what is missing.
    contact.first_name = contact.first_name or request.first_name
    contact.timezone = contact.timezone or request.timezone
    if not contact.is_subscribed:
        return SignupResult()
    enrollment_id = session.scalar(
        upsert_statement(session, Enrollment)
        .values(contact_id=contact.id, sequence_id=sequence.id, status="active", enrolled_at=now)
        .on_conflict_do_nothing(index_elements=["contact_id", "sequence_id"])
        .returning(Enrollment.id)
    )
    if enrollment_id is None:
        return SignupResult()
    enrollment = session.get_one(Enrollment, enrollment_id)
    delivery = schedule_next(
        session,
        enrollment=enrollment,
        contact=contact,
        sequence=sequence,
        after=now,
        received=set(),
        queue_now_until=lease(now, queue_lease),
        now=now,
    )
    queued = delivery.id if delivery is not None and delivery.lease_until is not None else None
    return SignupResult(delivery_to_enqueue=queued, enrolled=True)
