"""`drip resend`: send one step again as a new delivery marked as a resend.

A resend never plans a next step and is refused for a contact who unsubscribed or was
suppressed: an operator cannot override a subscriber's choice.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from drip.audit import record_audit
from drip.deliveries.planning import queue_off_schedule
from drip.errors import OperationRefused
from drip.models import Contact, Enrollment
from drip.sequences.definition import Sequence


def resend_step(
    session: Session,
    contact: Contact,
    sequence: Sequence,
    step_id: str,
    *,
    reason: str,
    operator: str,
    now: datetime,
    queue_lease: float,
) -> int:
    """Queue a resend of `step_id`; return its delivery id, or raise OperationRefused."""
    if not contact.is_subscribed:
        raise OperationRefused(
            f"the contact is {contact.status.value}"
            + (f" ({contact.status_reason})" if contact.status_reason else "")
        )
    if sequence.step(step_id) is None:
        raise OperationRefused(f"sequence {sequence.id!r} has no step {step_id!r}")
    enrollment = session.scalars(
        select(Enrollment).where(
            Enrollment.contact_id == contact.id, Enrollment.sequence_id == sequence.id
        )
    ).one_or_none()
    if enrollment is None:
        raise OperationRefused(f"the contact is not enrolled in {sequence.id!r}")
    delivery_id = queue_off_schedule(
        session, enrollment, step_id, now=now, queue_lease=queue_lease, resend=True
    )
    record_audit(
        session,
        action="delivery.resend",
        operator=operator,
        now=now,
        reason=reason,
        target=contact.public_id,
        details={"delivery_id": delivery_id, "sequence": sequence.id, "step": step_id},
    )
    return delivery_id
