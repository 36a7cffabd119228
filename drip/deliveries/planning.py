"""New delivery rows: the next planned step of an enrollment, or a row off the planned line.

Only the next step of an enrollment is ever scheduled, and the database holds to it:
at most one pending and one sent planned row per (enrollment, step) (migration 0005).
An enrollment that already has a pending planned row gets no second one here: a plan
asked for twice (a send settled by the worker and by the scheduler) plans once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import structlog
from sqlalchemy import (
    func,
    select,
)
from sqlalchemy.orm import Session

from drip.deliveries.inserts import insert_deliveries
from drip.deliveries.leases import lease
from drip.deliveries.progress import read_progress_many
from drip.deliveries.transitions import Move, transition
from drip.models import Contact, Delivery, Enrollment, EnrollmentStatus
from drip.schedule.planner import next_step, plan_due, subscriber_zone
from drip.sequences.definition import Sequence
from drip.webhooks.events import Event, EventType
from drip.webhooks.outbox import emit

log = structlog.get_logger(__name__)


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
    fresh: bool = False,
    highest: dict[str, int] | None = None,
    insert: bool = True,
) -> Delivery | None:
    """Plan the enrollment's next step after `after`, or complete the enrollment.

    `fresh` says the enrollment was created in this transaction, so it has no rows yet.
    With `queue_now_until`, a step already due at `now` is inserted straight as queued
    (leased until then) so the caller can enqueue it after commit without a scheduler tick.
    Without `insert`, the row is returned unsaved, for `insert_deliveries` to insert with
    others in one statement.
    """
    step = next_step(sequence, received)
    if step is None:
        enrollment.status = EnrollmentStatus.COMPLETED
        enrollment.ended_at = after
        return None
    due = plan_due(after, step, sequence, subscriber_zone(contact.timezone, sequence))
    delivery = Delivery(
        enrollment_id=enrollment.id,
        contact_id=contact.id,
        sequence_id=sequence.id,
        step_id=step.id,
        run=enrollment.run,
        # A step cancelled earlier (the subscriber left, then came back) keeps its old row.
        resend_number=0
        if fresh
        else highest.get(step.id, -1) + 1
        if highest is not None
        else next_resend_number(session, enrollment.id, step.id),
        status=transition(Move.PLAN_LATER).target,
        due_at=due,
    )
    if queue_now_until is not None and now is not None and due <= now:
        delivery.status = transition(Move.PLAN_NOW).target
        delivery.lease_until = queue_now_until
    if insert:
        session.add(delivery)
        session.flush()
    return delivery


def plan_first(
    session: Session,
    *,
    enrollment: Enrollment,
    contact: Contact,
    sequence: Sequence,
    now: datetime,
    queue_lease: float,
    fresh: bool = False,
) -> int | None:
    """Plan step 1 of a run that starts at `now`; the id of its row when it is due at once
    (inserted queued, for the caller to enqueue after commit), else None."""
    delivery = schedule_next(
        session,
        enrollment=enrollment,
        contact=contact,
        sequence=sequence,
        after=now,
        received=set(),
        queue_now_until=lease(now, queue_lease),
        now=now,
        fresh=fresh,
    )
    return delivery.id if delivery is not None and delivery.lease_until is not None else None


@dataclass(frozen=True)
class FollowUp:
    """A request to plan what follows an enrollment's latest send: `sent_step` and `sent_at`
    name a send the caller's transaction has just recorded; without them the delay counts
    from the last recorded send (or the enrollment)."""

    enrollment: Enrollment
    contact: Contact
    sequence: Sequence
    sent_step: str | None = None
    sent_at: datetime | None = None


def plan_many(
    session: Session, requests: list[FollowUp], *, now: datetime, queue_lease: float
) -> list[int | None]:
    """Plan what follows each request, in order: one progress read and one INSERT for all.

    Returns, per request, the id of a delivery due at once (queued, for the caller to
    enqueue after commit), else None.
    """
    if not requests:
        return []
    progress_of = read_progress_many(session, {r.enrollment.id for r in requests})
    planned: list[Delivery | None] = []
    completed: list[Event] = []
    for request in requests:
        current = progress_of[request.enrollment.id]
        if current.pending:
            # Only the next step is ever scheduled: one is already on its way.
            log.warning(
                "planning.already_pending",
                enrollment_id=request.enrollment.id,
                pending=sorted(current.pending),
            )
            planned.append(None)
            continue
        if request.sent_step is not None:
            current.passed.add(request.sent_step)
        if request.sent_at is not None:
            current.last_sent = max(current.last_sent or request.sent_at, request.sent_at)
        was_completed = request.enrollment.status is EnrollmentStatus.COMPLETED
        delivery = schedule_next(
            session,
            enrollment=request.enrollment,
            contact=request.contact,
            sequence=request.sequence,
            after=request.sent_at or current.last_sent or request.enrollment.enrolled_at,
            received=set(current.passed),
            queue_now_until=lease(now, queue_lease),
            now=now,
            highest=current.highest,
            insert=False,
        )
        if not was_completed and request.enrollment.status is EnrollmentStatus.COMPLETED:
            completed.append(_completed(request.enrollment, now))
        if delivery is not None:
            current.highest[delivery.step_id] = delivery.resend_number
            current.pending.add(delivery.step_id)
        planned.append(delivery)
    inserted = insert_deliveries(session, [d for d in planned if d is not None])
    session.flush()  # enrollments completed above
    emit(session, completed, now=now)
    due_now = {id(d) for d in inserted if d.status is transition(Move.PLAN_NOW).target}
    return [d.id if d is not None and id(d) in due_now else None for d in planned]


def _completed(enrollment: Enrollment, now: datetime) -> Event:
    """`enrollment.completed` for webhook receivers: the run reached its last step."""
    data = {"sequence": enrollment.sequence_id, "run": enrollment.run}
    return Event(EventType.ENROLLMENT_COMPLETED, enrollment.contact_id, now, data)


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
    """Plan what follows one enrollment's latest send (see `FollowUp`); return the id of a
    delivery due at once."""
    return plan_many(
        session,
        [FollowUp(enrollment, contact, sequence, sent_step, sent_at)],
        now=now,
        queue_lease=queue_lease,
    )[0]


def queue_off_schedule(
    session: Session,
    enrollment: Enrollment,
    step_id: str,
    *,
    now: datetime,
    queue_lease: float,
    resend: bool,
) -> int:
    """Queue a delivery outside the planned line (a confirmation, a resend), due at once.

    Returns its id for the caller to enqueue after commit. It never plans a next step.
    """
    delivery = Delivery(
        enrollment_id=enrollment.id,
        contact_id=enrollment.contact_id,
        sequence_id=enrollment.sequence_id,
        step_id=step_id,
        run=enrollment.run,
        resend=resend,
        resend_number=next_resend_number(session, enrollment.id, step_id),
        status=transition(Move.PLAN_NOW).target,
        due_at=now,
        lease_until=lease(now, queue_lease),
    )
    session.add(delivery)
    session.flush()
    return delivery.id


def next_resend_number(session: Session, enrollment_id: int, step_id: str) -> int:
    """The number a new row for a step takes: 0, or one more than its rows so far."""
    highest = session.scalar(
        select(func.max(Delivery.resend_number)).where(
            Delivery.enrollment_id == enrollment_id, Delivery.step_id == step_id
        )
    )
    return 0 if highest is None else highest + 1
