"""The schedule's rows: planning a subscriber's next delivery inside the caller's transaction."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from drip.models import Contact, Delivery, DeliveryStatus, Enrollment, EnrollmentStatus
from drip.schedule.planner import next_step, plan_due
from drip.sequences.definition import Sequence


def contact_zone(contact: Contact, sequence: Sequence) -> ZoneInfo:
    """The subscriber's zone: theirs when they gave one, else the sequence's."""
    return ZoneInfo(contact.timezone or sequence.timezone)


def progress(session: Session, enrollment_id: int) -> tuple[set[str], datetime | None]:
    """Ids of the steps this enrollment has passed (sent, or skipped as too late), and when
    the last email went."""
    rows = session.execute(
        select(Delivery.step_id, Delivery.sent_at).where(
            Delivery.enrollment_id == enrollment_id,
            Delivery.status.in_([DeliveryStatus.SENT, DeliveryStatus.SKIPPED]),
        )
    ).all()
    sent_times = [sent_at for _, sent_at in rows if sent_at is not None]
    return {step_id for step_id, _ in rows}, max(sent_times, default=None)


def schedule_next(
    session: Session,
    *,
    enrollment: Enrollment,
    contact: Contact,
    sequence: Sequence,
    after: datetime,
    received: set[str],
    queue_now_until: datetime | None = None,
    now: datetime | None = None,
) -> Delivery | None:
    """Plan the enrollment's next step after `after`, or complete the enrollment.

    With `queue_now_until`, a step already due at `now` is inserted straight as queued
    (leased until then) so the caller can enqueue it after commit without a scheduler tick.
    """
    step = next_step(sequence, received)
    if step is None:
        enrollment.status = EnrollmentStatus.COMPLETED
        enrollment.ended_at = after
        return None
    due = plan_due(after, step, sequence, contact_zone(contact, sequence))
    delivery = Delivery(
        enrollment_id=enrollment.id,
        contact_id=contact.id,
        sequence_id=sequence.id,
        step_id=step.id,
        # A step cancelled earlier (the subscriber left, then came back) keeps its old row.
        resend_number=next_resend_number(session, enrollment.id, step.id),
        due_at=due,
    )
    if queue_now_until is not None and now is not None and due <= now:
        delivery.status = DeliveryStatus.QUEUED
        delivery.lease_until = queue_now_until
    session.add(delivery)
    session.flush()
    return delivery


def plan_following(
    session: Session,
    *,
    enrollment: Enrollment,
    contact: Contact,
    sequence: Sequence,
    now: datetime,
    queue_lease: float,
    sent_step: str | None = None,
    sent_at: datetime | None = None,
) -> int | None:
    """Plan what follows the enrollment's latest send; return the id of a delivery due at once.

    `sent_step` and `sent_at` name a send this transaction has just recorded; without
    them the delay counts from the last recorded send (or the enrollment).
    """
    received, last_sent = progress(session, enrollment.id)
    if sent_step is not None:
        received.add(sent_step)
    after = sent_at or last_sent or enrollment.enrolled_at
    delivery = schedule_next(
        session,
        enrollment=enrollment,
        contact=contact,
        sequence=sequence,
        after=after,
        received=received,
        queue_now_until=lease(now, queue_lease),
        now=now,
    )
    return delivery.id if delivery is not None and delivery.lease_until is not None else None


def next_resend_number(session: Session, enrollment_id: int, step_id: str) -> int:
    """The number a new row for a step takes: 0, or one more than its rows so far."""
    highest = session.scalar(
        select(func.max(Delivery.resend_number)).where(
            Delivery.enrollment_id == enrollment_id, Delivery.step_id == step_id
        )
    )
    return 0 if highest is None else highest + 1


def lease(now: datetime, seconds: float) -> datetime:
    """The end of a lease of `seconds` taken at `now`."""
    return now + timedelta(seconds=seconds)
