"""The schedule's rows: planning a subscriber's next delivery inside the caller's transaction."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    BigInteger,
    DateTime,
    Integer,
    String,
    Table,
    bindparam,
    false,
    func,
    insert,
    literal,
    select,
)
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeEngine

from drip.db import is_postgresql, unnest_params, unnest_rows, utcnow
from drip.models import Contact, Delivery, DeliveryStatus, Enrollment, EnrollmentStatus
from drip.schedule.planner import next_step, plan_due
from drip.sequences.definition import Sequence


def contact_zone(contact: Contact, sequence: Sequence) -> ZoneInfo:
    """The subscriber's zone: theirs when they gave one, else the sequence's."""
    return ZoneInfo(contact.timezone or sequence.timezone)


@dataclass
class Progress:
    """Where an enrollment stands: steps passed (sent, or skipped as too late), when the last
    email went, and the highest row number each step has (for a new row of that step)."""

    passed: set[str] = field(default_factory=set)
    last_sent: datetime | None = None
    highest: dict[str, int] = field(default_factory=dict)


def read_progress_many(session: Session, enrollment_ids: Iterable[int]) -> dict[int, Progress]:
    """The progress of each enrollment, in one query for all of them."""
    found = {enrollment_id: Progress() for enrollment_id in enrollment_ids}
    rows = session.execute(
        select(
            Delivery.enrollment_id,
            Delivery.step_id,
            Delivery.status,
            Delivery.sent_at,
            Delivery.resend_number,
        ).where(Delivery.enrollment_id.in_(list(found)))
    ).all()
    for enrollment_id, step_id, status, sent_at, number in rows:
        current = found[enrollment_id]
        if status in (DeliveryStatus.SENT, DeliveryStatus.SKIPPED):
            current.passed.add(step_id)
        if status is DeliveryStatus.SENT and sent_at is not None:
            current.last_sent = max(current.last_sent or sent_at, sent_at)
        current.highest[step_id] = max(current.highest.get(step_id, -1), number)
    return found


def progress(session: Session, enrollment_id: int) -> tuple[set[str], datetime | None]:
    """Ids of the steps this enrollment has passed, and when the last email went."""
    current = read_progress_many(session, [enrollment_id])[enrollment_id]
    return current.passed, current.last_sent


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
    due = plan_due(after, step, sequence, contact_zone(contact, sequence))
    delivery = Delivery(
        enrollment_id=enrollment.id,
        contact_id=contact.id,
        sequence_id=sequence.id,
        step_id=step.id,
        # A step cancelled earlier (the subscriber left, then came back) keeps its old row.
        resend_number=0
        if fresh
        else highest.get(step.id, -1) + 1
        if highest is not None
        else next_resend_number(session, enrollment.id, step.id),
        due_at=due,
    )
    if queue_now_until is not None and now is not None and due <= now:
        delivery.status = DeliveryStatus.QUEUED
        delivery.lease_until = queue_now_until
    if insert:
        session.add(delivery)
        session.flush()
    return delivery


def insert_deliveries(session: Session, deliveries: list[Delivery]) -> None:
    """Insert new rows in one statement and give each its id."""
    if not deliveries:
        return
    if not is_postgresql(session.get_bind()):  # type: ignore[arg-type]
        session.add_all(deliveries)
        session.flush()
        return
    inserted = session.execute(
        _insert_from_arrays(),
        unnest_params(
            {
                "enrollment_id": [d.enrollment_id for d in deliveries],
                "contact_id": [d.contact_id for d in deliveries],
                "sequence_id": [d.sequence_id for d in deliveries],
                "step_id": [d.step_id for d in deliveries],
                "resend_number": [d.resend_number for d in deliveries],
                "status": [(d.status or DeliveryStatus.SCHEDULED).value for d in deliveries],
                "due_at": [d.due_at for d in deliveries],
                "lease_until": [d.lease_until for d in deliveries],
            }
        )
        | {"now": utcnow()},
    ).all()
    ids = {(e, s, n): i for i, e, s, n in inserted}
    for delivery in deliveries:
        delivery.id = ids[(delivery.enrollment_id, delivery.step_id, delivery.resend_number)]


#: The columns a new row takes from its planner (PostgreSQL array types).
_PLANNED_COLUMNS: dict[str, TypeEngine[Any]] = {
    "enrollment_id": BigInteger(),
    "contact_id": BigInteger(),
    "sequence_id": String(),
    "step_id": String(),
    "resend_number": Integer(),
    "status": String(),
    "due_at": DateTime(timezone=True),
    "lease_until": DateTime(timezone=True),
}


@cache
def _insert_from_arrays() -> Any:
    """INSERT ... SELECT FROM unnest(...) RETURNING the ids: built once, any number of rows.
    (On the table, not the entity: a Core statement with parameters, not an ORM bulk insert.)"""
    table: Table = Delivery.__table__  # type: ignore[assignment]
    rows = unnest_rows(_PLANNED_COLUMNS)
    now = bindparam("now", type_=DateTime(timezone=True))
    return (
        insert(table)
        .from_select(
            [*_PLANNED_COLUMNS, "resend", "attempts", "created_at", "updated_at"],
            select(*rows.c, false(), literal(0), now, now),
        )
        .returning(table.c.id, table.c.enrollment_id, table.c.step_id, table.c.resend_number)
    )


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
    for request in requests:
        current = progress_of[request.enrollment.id]
        if request.sent_step is not None:
            current.passed.add(request.sent_step)
        if request.sent_at is not None:
            current.last_sent = max(current.last_sent or request.sent_at, request.sent_at)
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
        if delivery is not None:
            current.highest[delivery.step_id] = delivery.resend_number
        planned.append(delivery)
    insert_deliveries(session, [d for d in planned if d is not None])
    session.flush()  # enrollments completed above
    return [d.id if d is not None and d.lease_until is not None else None for d in planned]


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
        resend=resend,
        resend_number=next_resend_number(session, enrollment.id, step_id),
        status=DeliveryStatus.QUEUED,
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


def lease(now: datetime, seconds: float) -> datetime:
    """The end of a lease of `seconds` taken at `now`."""
    return now + timedelta(seconds=seconds)
