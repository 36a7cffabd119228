"""Where the people in flight on one sequence stand, counted in SQL: what `plan` reads.

A person's outlook depends only on the furthest step of the file they received, their
pending planned row (step and due) and, when that step is gone, the time the next delay
counts from (their last send, else their enrolment) and their zone. So one query groups
the active enrolments by those, reading each enrolment's rows of its current run with the
rule of `drip.deliveries.progress` (what counts as received, what is on the line), and
hands back a few rows per sequence instead of a row per delivery.

The furthest step is found by the file's order, written into the query as a CASE over the
file's step ids. Received steps no longer in the file rank below every step of it; when a
person received only such steps, the greatest id among them stands for their position.
A person has at most one pending planned row (the planner keeps one per enrolment).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, func, literal, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import Subquery

from drip.deliveries.progress import (
    current_run_sql,
    last_sent_sql,
    pending_on_the_line_sql,
    received_sql,
)
from drip.models import Contact, Delivery, Enrollment, EnrollmentStatus
from drip.models.base import UTCDateTime

#: The file index of a received step that is no longer in the file.
UNFILED = -1


@dataclass(frozen=True)
class Standing:
    """People of one sequence who stand alike: the file index of the furthest step they
    received (None: nothing received), the greatest received id outside the file (read
    when nothing of the file was received), their pending planned step, and how many.

    `first_due`/`last_due` span the pending rows' due times; for a pending step no longer
    in the file (or none), the people are also split by zone and `first_after`/`last_after`
    span the times their next delay counts from."""

    furthest: int | None
    unfiled: str | None
    pending: str | None
    timezone: str | None
    people: int
    first_due: datetime | None
    last_due: datetime | None
    first_after: datetime | None
    last_after: datetime | None


def file_index(step_ids: list[str]) -> ColumnElement[int]:
    """A row's step as its index in `step_ids` (the file's order), `UNFILED` when absent."""
    if not step_ids:
        return literal(UNFILED)
    return case({step: i for i, step in enumerate(step_ids)}, value=Delivery.step_id, else_=UNFILED)


def enrolment_rows(
    sequence_id: str, step_ids: list[str], *, only: Select[Any] | None = None
) -> Subquery:
    """One row per active enrolment of the sequence (of those `only` selects, when given):
    furthest, unfiled, pending step, its due and delivery id, the time the next delay counts
    from, the contact and its zone."""
    index = file_index(step_ids)
    received = received_sql()
    pending = pending_on_the_line_sql()
    # The rows are counted per (enrolment, run) in one pass over the sequence's deliveries;
    # the join then keeps each active enrolment's current run (`current_run_sql`).
    runs = (
        select(
            Delivery.enrollment_id,
            Delivery.run,
            func.max(case((received, index))).label("furthest"),
            func.max(case((and_(received, index == UNFILED), Delivery.step_id))).label("unfiled"),
            func.max(case((pending, Delivery.step_id))).label("pending"),
            func.max(case((pending, Delivery.due_at)), type_=UTCDateTime()).label("due"),
            func.max(case((pending, Delivery.id))).label("pending_id"),
            func.max(last_sent_sql(), type_=UTCDateTime()).label("last_sent"),
        )
        .where(Delivery.sequence_id == sequence_id)
        .where(*([] if only is None else [Delivery.enrollment_id.in_(only)]))
        .group_by(Delivery.enrollment_id, Delivery.run)
        .subquery("runs")
    )
    return (
        select(
            Enrollment.id.label("enrollment_id"),
            Enrollment.contact_id.label("contact_id"),
            Contact.timezone.label("timezone"),
            runs.c.furthest,
            runs.c.unfiled,
            runs.c.pending,
            runs.c.due,
            runs.c.pending_id,
            func.coalesce(runs.c.last_sent, Enrollment.enrolled_at, type_=UTCDateTime()).label(
                "after"
            ),
        )
        .join(Contact, Contact.id == Enrollment.contact_id)
        .outerjoin(
            runs,
            and_(runs.c.enrollment_id == Enrollment.id, current_run_sql(runs.c.run)),
        )
        .where(Enrollment.sequence_id == sequence_id, Enrollment.status == EnrollmentStatus.ACTIVE)
        .where(*([] if only is None else [Enrollment.id.in_(only)]))
        .subquery("enrolment")
    )


def read_standings(session: Session, sequence_id: str, step_ids: list[str]) -> list[Standing]:
    """The active enrolments of `sequence_id` grouped by where they stand, against the file
    whose steps are `step_ids` in order (empty: the file was removed)."""
    one = enrolment_rows(sequence_id, step_ids)
    in_file = one.c.pending.in_(step_ids) if step_ids else literal(False)
    unfiled = case((one.c.furthest == UNFILED, one.c.unfiled))
    # Only people whose pending step is gone need their zone: the rest keep their due.
    zone = case((in_file, None), else_=one.c.timezone)
    rows = session.execute(
        select(
            one.c.furthest,
            unfiled.label("unfiled"),
            one.c.pending,
            zone.label("zone"),
            func.count(),
            func.min(one.c.due, type_=UTCDateTime()),
            func.max(one.c.due, type_=UTCDateTime()),
            func.min(one.c.after, type_=UTCDateTime()),
            func.max(one.c.after, type_=UTCDateTime()),
        ).group_by(one.c.furthest, unfiled, one.c.pending, zone)
    ).all()
    return [Standing(*row) for row in rows]
