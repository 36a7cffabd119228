"""Confirming a signup: the click that starts a double opt-in sequence or brings a contact back.

A consent is given once, to one request. A confirmation token names the contact and the
sequence and carries the time its email was made (`drip.unsubscribe.tokens`); besides its
signature and lifetime, it must answer the request that is open now:

- the enrollment is pending (a request is open: not confirmed, expired or left since);
- the token was made after that request was stamped (a token of an earlier request, say
  one confirmed and then unsubscribed from, opens nothing), allowing `CLOCK_SKEW` between
  the API that stamps the request and the worker that signs the email;
- the token was made after the contact's last unsubscribe or suppression (a token older
  than "stop everything" never undoes it), to the second, with no skew allowed.

A returning subscriber who already had email 1 gets it again (a resend: it carries the
template they asked for) and continues after the last step they received, with delays
counted from the confirmation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from drip.contacts.lifecycle import lock_contact
from drip.deliveries.planning import plan_following, queue_off_schedule
from drip.deliveries.progress import read_progress
from drip.models import Contact, ContactStatus, Enrollment, EnrollmentStatus
from drip.sequences.definition import Sequence
from drip.webhooks.events import Event, EventType
from drip.webhooks.outbox import emit

#: How much earlier than the request it answers a confirmation token may look: the API
#: stamps the request and a worker, on another machine's clock, signs the email after it.
CLOCK_SKEW = timedelta(seconds=30)


@dataclass
class ConfirmResult:
    """Whether the signup is confirmed, and the deliveries to enqueue after commit."""

    confirmed: bool
    to_enqueue: list[int] = field(default_factory=list)


def answers_open_request(
    issued_at: datetime, *, requested_at: datetime | None, stopped_at: datetime | None
) -> bool:
    """Whether a token made at `issued_at` (whole seconds) may confirm the request stamped
    `requested_at`, for a contact whose last unsubscribe or suppression was at `stopped_at`."""
    if requested_at is None or issued_at < requested_at - CLOCK_SKEW:
        return False
    # Tokens carry whole seconds, so one made in the second of the stop counts as after it:
    # a subscriber may unsubscribe and sign up again at once.
    return stopped_at is None or issued_at >= stopped_at.replace(microsecond=0)


def _stopped_at(contact: Contact) -> datetime | None:
    """When the contact last unsubscribed or was suppressed; None while it is active."""
    if contact.status in (ContactStatus.UNSUBSCRIBED, ContactStatus.SUPPRESSED):
        return contact.status_changed_at
    return None


def confirm_enrollment(
    session: Session,
    *,
    public_id: str,
    sequence: Sequence,
    issued_at: datetime,
    now: datetime,
    queue_lease: float,
) -> ConfirmResult:
    """Activate the contact's pending enrollment in `sequence` if the token made at
    `issued_at` answers the open request (see the module docstring); idempotent once
    confirmed."""
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
    if not answers_open_request(
        issued_at, requested_at=enrollment.confirm_requested_at, stopped_at=_stopped_at(contact)
    ):
        return ConfirmResult(False)  # a token of an earlier request, or from before a stop
    contact.status, contact.status_reason, contact.status_changed_at = (
        ContactStatus.ACTIVE,
        "confirmed signup",
        now,
    )
    enrollment.status, enrollment.confirm_requested_at = EnrollmentStatus.ACTIVE, None
    data = {"sequence": sequence.id}
    emit(session, [Event(EventType.CONTACT_CONFIRMED, contact.id, now, data)], now=now)
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
