"""Where an enrollment stands: the one rule for what counts as received.

A step counts as received when a row of it was sent (planned or resent), or skipped as
too late: either way the subscriber's line has moved past it, and the planner continues
after it. The last send is the latest of any email, so a delay counts from it. Only the
rows of the enrolment's current run count (`Enrollment.run`: a run started again by
`reentry:` begins afresh); row numbers count across runs. The
worker's planner, `drip sequences plan` and `drip stats` all read progress through here;
`plan` aggregates in SQL, with the rule as SQL expressions built here from the same
constants (`received_sql`, `on_the_line_sql`, `current_run_sql`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import ColumnElement, and_, case, select
from sqlalchemy.orm import Session

from drip.deliveries.transitions import PENDING
from drip.models import Delivery, DeliveryStatus, Enrollment
from drip.sequences.definition import CONFIRM_STEP

#: The statuses that move a subscriber past a step.
RECEIVED = (DeliveryStatus.SENT, DeliveryStatus.SKIPPED)


def on_the_line(*, resend: bool, step_id: str) -> bool:
    """Whether a row is on the planned line: not a resend, not a confirmation. Only such
    rows move a subscriber forward, and only their sends plan a next step."""
    return not resend and step_id != CONFIRM_STEP


def received_sql() -> ColumnElement[bool]:
    """`Delivery`'s rows that move a subscriber past their step (`RECEIVED`), in SQL."""
    return Delivery.status.in_(RECEIVED)


def on_the_line_sql() -> ColumnElement[bool]:
    """`Delivery`'s rows on the planned line (`on_the_line`), in SQL."""
    return and_(Delivery.resend.is_(False), Delivery.step_id != CONFIRM_STEP)


def pending_on_the_line_sql() -> ColumnElement[bool]:
    """`Delivery`'s planned rows still pending (`Progress.pending`), in SQL."""
    return and_(Delivery.status.in_(PENDING), on_the_line_sql())


def last_sent_sql() -> ColumnElement[datetime | None]:
    """A row's send time when it counts as the last send (`Progress.last_sent`), else NULL;
    take its maximum over the enrolment's current run."""
    return case((Delivery.status == DeliveryStatus.SENT, Delivery.sent_at))


def current_run_sql(run: ColumnElement[int] | None = None) -> ColumnElement[bool]:
    """`Delivery`'s rows (or rows whose run is `run`) of their enrolment's current run,
    joined with `Enrollment`, in SQL."""
    return (Delivery.run if run is None else run) == Enrollment.run


@dataclass
class Progress:
    """One enrollment's progress: the steps passed, when the last email went, the planned
    rows still pending (step ids), and the highest row number each step has."""

    passed: set[str] = field(default_factory=set)
    last_sent: datetime | None = None
    pending: set[str] = field(default_factory=set)
    highest: dict[str, int] = field(default_factory=dict)

    def add(
        self,
        *,
        step_id: str,
        status: DeliveryStatus,
        sent_at: datetime | None,
        number: int,
        resend: bool,
        current: bool = True,
    ) -> None:
        """Count one row of the enrollment (`current`: of its current run)."""
        self.highest[step_id] = max(self.highest.get(step_id, -1), number)
        if not current:
            return
        if status in RECEIVED:
            self.passed.add(step_id)
        if status is DeliveryStatus.SENT and sent_at is not None:
            self.last_sent = max(self.last_sent or sent_at, sent_at)
        if status in PENDING and on_the_line(resend=resend, step_id=step_id):
            self.pending.add(step_id)


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
            Delivery.resend,
            Delivery.run == Enrollment.run,
        )
        .join(Enrollment, Enrollment.id == Delivery.enrollment_id)
        .where(Delivery.enrollment_id.in_(list(found)))
    ).all()
    for enrollment_id, step_id, status, sent_at, number, resend, current in rows:
        found[enrollment_id].add(
            step_id=step_id,
            status=status,
            sent_at=sent_at,
            number=number,
            resend=resend,
            current=bool(current),
        )
    return found


def read_progress(session: Session, enrollment_id: int) -> Progress:
    """The progress of one enrollment."""
    return read_progress_many(session, [enrollment_id])[enrollment_id]
