"""The promises the state-machine model (`test_state_model.py`) checks, as functions of
the rows on the database and the model's own record of what happened: the provider's
ledger, the acknowledged stops, the goals reached, the signups.

Each check raises AssertionError naming the rows that break its promise.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from drip.deliveries.progress import on_the_line, read_progress_many
from drip.models import (
    PENDING,
    Delivery,
    DeliveryStatus,
    Enrollment,
    EnrollmentStatus,
    ProviderEvent,
)
from drip.reports.funnel import funnel
from drip.schedule.impact import plan_changes
from drip.schedule.planner import next_step
from drip.sequences.catalog import SequenceCatalog
from drip.sequences.definition import CONFIRM_STEP
from tests.integration.state_model_parts import Ledger

S = DeliveryStatus

#: Each signup: (ledger step, contact id, sequence id).
Signups = list[tuple[int, int, str]]


@dataclass(frozen=True)
class Row:
    """A delivery row as the checks read it."""

    id: int
    enrollment_id: int
    contact_id: int
    sequence_id: str
    step_id: str
    resend_number: int
    resend: bool
    status: DeliveryStatus
    error: str | None
    due_at: datetime
    lease_until: datetime | None
    run: int

    @property
    def on_the_line(self) -> bool:
        """A planned row: not a resend, not a confirmation."""
        return on_the_line(resend=self.resend, step_id=self.step_id)


@dataclass(frozen=True)
class Stop:
    """An acknowledged unsubscribe (`sequence_id` None) or leave, at a ledger step, with the
    rows the contact had then."""

    at: int
    contact_id: int
    sequence_id: str | None
    rows_then: frozenset[int]


@dataclass(frozen=True)
class GoalMark:
    """A goal event for a run (an enrollment's `run`th) that began at or before it: at a
    ledger step, acknowledged (the 202: no planned email of the run may leave after) or
    applied (not one email of the run may leave after, but a confirmation a later signup
    asked for)."""

    at: int
    contact_id: int
    enrollment_id: int
    run: int
    applied: bool
    #: The highest delivery id when it was applied: a row of its run in `sending` then may
    #: come back to the queue (cancelled at its send-time check); none may be planned after.
    highest: int = 0


def read_rows(session: Session) -> list[Row]:
    """Every delivery row, by id."""
    return [
        Row(
            d.id,
            d.enrollment_id,
            d.contact_id,
            d.sequence_id,
            d.step_id,
            d.resend_number,
            d.resend,
            d.status,
            d.error,
            d.due_at,
            d.lease_until,
            d.run,
        )
        for d in session.scalars(select(Delivery).order_by(Delivery.id))
    ]


def evented(session: Session) -> set[int]:
    """The deliveries the provider reported `processed`."""
    found = session.scalars(
        select(ProviderEvent.delivery_id).where(ProviderEvent.event == "processed")
    )
    return {d for d in found if d is not None}


def highest_id(session: Session) -> int:
    """The highest delivery id so far (0 with none)."""
    return session.scalar(select(func.max(Delivery.id))) or 0


@dataclass(frozen=True)
class LineMark:
    """Where the planned lines stood before a step: the highest row id, and which
    enrollments were active."""

    highest: int
    active: frozenset[int]


def line_mark(session: Session) -> LineMark:
    """Where the planned lines stand now."""
    active = session.scalars(
        select(Enrollment.id).where(Enrollment.status == EnrollmentStatus.ACTIVE)
    )
    return LineMark(highest_id(session), frozenset(active))


def lines_moved(session: Session, mark: LineMark) -> dict[int, str]:
    """The enrollments whose line moved since `mark`, and how: a new planned row, or
    completion."""
    moved = {
        d.enrollment_id: f"planned {d.step_id}"
        for d in session.scalars(select(Delivery).where(Delivery.id > mark.highest))
        if on_the_line(resend=d.resend, step_id=d.step_id)
    }
    completed = session.scalars(
        select(Enrollment.id).where(
            Enrollment.status == EnrollmentStatus.COMPLETED, Enrollment.id.in_(mark.active)
        )
    )
    return moved | {enrollment_id: "completed" for enrollment_id in completed}


def check_only_ended_lines_move(moved: dict[int, str], ended_lines: set[int], what: str) -> None:
    """Only an enrollment whose planned row ended here may move on here (a next planned
    row, or completion): a resend or a confirmation never moves the line."""
    stray = {e: how for e, how in moved.items() if e not in ended_lines}
    assert not stray, f"{what} moved lines {stray} though no planned row of theirs ended"


def check_exactly_once(rows: dict[int, Row], ledger: Ledger, excused: Counter[int]) -> None:
    """No row is accepted more often than once plus the blind resends it was excused."""
    counts = ledger.counts()
    for delivery_id, times in counts.items():
        allowed = 1 + excused[delivery_id]
        row = rows[delivery_id]
        key = (row.enrollment_id, row.step_id, row.resend_number)
        assert times <= allowed, (
            f"(enrollment, step, resend number) {key} was accepted {times} times "
            f"(allowed {allowed}: resent blind {allowed - 1} times)"
        )
    for row in rows.values():
        if row.status is S.SENT:
            assert row.id in counts, f"row {row.id} says sent, never accepted"


def asked_later(row: Row, since: int, at: int, signups: Signups) -> bool:
    """Whether `row` is a confirmation that answers a signup made between ledger steps
    `since` and `at` (an older one that was in flight counts as it)."""
    return row.step_id == CONFIRM_STEP and any(
        since < signed < at and (contact, sequence) == (row.contact_id, row.sequence_id)
        for signed, contact, sequence in signups
    )


def check_nothing_after_a_stop(
    rows: dict[int, Row], ledger: Ledger, stops: list[Stop], signups: Signups
) -> None:
    """Nothing is accepted for a contact after its acknowledged unsubscribe (of that
    sequence after a leave), but a confirmation answering a signup made after it."""
    for at, delivery_id, _ in ledger.accepted:
        row = rows[delivery_id]
        for stop in stops:
            if stop.contact_id != row.contact_id or stop.at > at:
                continue
            if stop.sequence_id not in (None, row.sequence_id):
                continue
            assert asked_later(row, stop.at, at, signups), (
                f"delivery {row.id} ({row.sequence_id}/{row.step_id}) was accepted after "
                f"the contact's acknowledged "
                + ("unsubscribe" if stop.sequence_id is None else "leave")
            )


def check_nothing_after_a_goal(
    rows: dict[int, Row], ledger: Ledger, goals: list[GoalMark], signups: Signups
) -> None:
    """After a goal event's 202, no planned email of the run it ends is accepted; after
    the event is applied, none of the run at all (a resend neither), but a confirmation
    answering a signup made after it."""
    for at, delivery_id, _ in ledger.accepted:
        row = rows[delivery_id]
        for goal in goals:
            if (goal.enrollment_id, goal.run) != (row.enrollment_id, row.run) or goal.at > at:
                continue
            if not goal.applied and not row.on_the_line:
                continue
            assert asked_later(row, goal.at, at, signups), (
                f"delivery {row.id} ({row.sequence_id}/{row.step_id}, run {row.run}) was "
                f"accepted after its run's goal was "
                + ("applied" if goal.applied else "acknowledged (202)")
            )


def check_converted_runs_rest(
    session: Session, rows: dict[int, Row], goals: Iterable[GoalMark]
) -> None:
    """A run whose goal was applied is no longer active, and nothing since planned a step
    of it (that the apply cancelled what was pending is checked as it happens)."""
    for goal in goals:
        if not goal.applied:
            continue
        enrollment = session.get_one(Enrollment, goal.enrollment_id)
        if enrollment.run != goal.run:
            continue  # a later run began since
        assert enrollment.status is not EnrollmentStatus.ACTIVE, (
            f"enrollment {goal.enrollment_id} is still active after its goal was applied"
        )
        pending = [
            (r.id, r.step_id, r.status.value)
            for r in rows.values()
            if (r.enrollment_id, r.run) == (goal.enrollment_id, goal.run)
            and r.on_the_line
            and r.status in (S.SCHEDULED, S.QUEUED)
            and r.id > goal.highest
        ]
        assert not pending, f"a step of a run ended by its goal was planned after: {pending}"


def check_rows(rows: dict[int, Row]) -> None:
    """A failed, cancelled or skipped row says why (and the daily cap never drops a row);
    at most one planned row per run is pending; a failed planned row is its run's last."""
    lines: dict[tuple[int, int], list[Row]] = defaultdict(list)
    for row in rows.values():
        if row.status in (S.FAILED, S.CANCELLED, S.SKIPPED):
            assert row.error, f"row {row.id} is {row.status} without a reason"
            assert "daily cap" not in row.error, f"the daily cap dropped row {row.id}: {row.error}"
        if row.on_the_line:
            lines[(row.enrollment_id, row.run)].append(row)
    for (enrollment_id, run), line in lines.items():
        pending = [(r.id, r.step_id) for r in line if r.status in PENDING]
        assert len(pending) <= 1, f"enrollment {enrollment_id} run {run} has {pending} pending"
        latest = max(r.id for r in line)
        planned_past = [r.id for r in line if r.status is S.FAILED and r.id != latest]
        assert not planned_past, (
            f"enrollment {enrollment_id}: its line went on past failed rows {planned_past}"
        )


def check_plan_and_stats_agree(
    session: Session, rows: dict[int, Row], catalog: SequenceCatalog, now: datetime
) -> None:
    """`drip sequences plan` and `drip stats` against the worker's progress rule."""
    enrollments = session.execute(
        select(Enrollment.id, Enrollment.sequence_id, Enrollment.status)
    ).all()
    progress = read_progress_many(session, [e.id for e in enrollments])
    expected: dict[str, Counter[tuple[str | None, str | None]]] = defaultdict(Counter)
    for enrollment_id, sequence_id, status in enrollments:
        if status is not EnrollmentStatus.ACTIVE:
            continue
        sequence = catalog.get(sequence_id).definition
        current = progress[enrollment_id]
        pending = next(iter(current.pending), None)
        if pending is not None and sequence.step(pending) is not None:
            coming: str | None = pending
        else:
            step = next_step(sequence, current.passed)
            coming = step.id if step else None
        expected[sequence_id][(pending, coming)] += 1
    for impact in plan_changes(session, catalog, now=now):
        shown: Counter[tuple[str | None, str | None]] = Counter()
        for group in impact.groups:
            shown[(group.pending, group.next_step)] += group.people
        assert shown == expected[impact.sequence_id], (
            f"plan for {impact.sequence_id} shows {dict(shown)}, the worker's progress "
            f"says {dict(expected[impact.sequence_id])}"
        )
    sent_lines: Counter[tuple[str, str]] = Counter(
        (r.sequence_id, r.step_id) for r in rows.values() if r.status is S.SENT and r.on_the_line
    )
    # Progress is the current run's: a run a trigger began again counts from its step 1.
    runs = dict(session.execute(select(Enrollment.id, Enrollment.run)).tuples().all())
    sent_this_run: Counter[tuple[str, str]] = Counter(
        (r.sequence_id, r.step_id)
        for r in rows.values()
        if r.status is S.SENT and r.on_the_line and r.run == runs[r.enrollment_id]
    )
    for line in funnel(session, catalog):
        if line.step == CONFIRM_STEP:
            continue
        waiting = sum(
            line.step in progress[e.id].pending
            for e in enrollments
            if e.sequence_id == line.sequence
        )
        passed = sum(
            line.step in progress[e.id].passed
            for e in enrollments
            if e.sequence_id == line.sequence
        )
        assert line.counts["scheduled"] == waiting, (
            f"stats count {line.counts['scheduled']} pending at {line.sequence}/{line.step}, "
            f"progress says {waiting}"
        )
        key = (line.sequence, line.step)
        assert line.counts["sent"] == sent_lines[key], (
            f"stats count {line.counts['sent']} sent at {line.sequence}/{line.step}; "
            f"{sent_lines[key]} planned rows are sent"
        )
        assert sent_this_run[key] <= passed, (
            f"{sent_this_run[key]} planned rows of current runs are sent at "
            f"{line.sequence}/{line.step}; {passed} subscribers are past it"
        )
