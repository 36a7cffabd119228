"""`plan`'s former path, kept as the reference its SQL aggregation must agree with, and a
randomized world of people in flight to compare the two on (PostgreSQL and SQLite).

The reference loads every row of every active enrolment and works out each person's
outlook one by one with `Progress`, as `plan_changes` did before it counted in SQL. One
change: a person who received only steps no longer in the file stands at the greatest of
their ids (the old code took whichever a set yielded first).
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from drip.deliveries.progress import Progress, on_the_line
from drip.deliveries.transitions import PENDING
from drip.models import Contact, Delivery, DeliveryStatus, Enrollment, EnrollmentStatus
from drip.schedule.impact import NOT_STARTED
from drip.schedule.planner import next_step, plan_due, subscriber_zone
from drip.sequences.catalog import SequenceCatalog
from drip.sequences.definition import CONFIRM_STEP, Sequence

#: (position, pending, next, change) -> (people, first due, last due)
Outlooks = dict[
    tuple[str, str | None, str | None, str], tuple[int, datetime | None, datetime | None]
]


@dataclass
class Person:
    """One enrollment in flight: its progress by the shared rule, and its pending row."""

    enrolled_at: datetime
    timezone: str | None
    progress: Progress = field(default_factory=Progress)
    pending: tuple[str, datetime] | None = None


def reference_outlooks(
    session: Session, catalog: SequenceCatalog, sequence_id: str, now: datetime
) -> Outlooks:
    """The groups of one sequence as the former per-person path computed them."""
    sequence = catalog.get(sequence_id).definition if sequence_id in catalog else None
    rows = session.execute(
        select(
            Enrollment.id.label("enrollment_id"),
            Enrollment.enrolled_at,
            Contact.timezone,
            Delivery.step_id,
            Delivery.status,
            Delivery.due_at,
            Delivery.sent_at,
            Delivery.resend_number,
            Delivery.resend,
        )
        .join(Contact, Contact.id == Enrollment.contact_id)
        .outerjoin(
            Delivery,
            and_(Delivery.enrollment_id == Enrollment.id, Delivery.run == Enrollment.run),
        )
        .where(Enrollment.sequence_id == sequence_id, Enrollment.status == EnrollmentStatus.ACTIVE)
        .order_by(Enrollment.id)
    ).all()
    people: dict[int, Person] = {}
    for row in rows:
        person = people.setdefault(
            row.enrollment_id, Person(enrolled_at=row.enrolled_at, timezone=row.timezone)
        )
        if row.step_id is None:
            continue
        person.progress.add(
            step_id=row.step_id,
            status=row.status,
            sent_at=row.sent_at,
            number=row.resend_number,
            resend=row.resend,
        )
        if row.status in PENDING and on_the_line(resend=row.resend, step_id=row.step_id):
            person.pending = (row.step_id, row.due_at)
    found: dict[Any, list[Any]] = {}
    for person in people.values():
        key, due = _outlook(sequence, person, now)
        people_, first, last = found.setdefault(key, [0, None, None])
        found[key] = [
            people_ + 1,
            first if due is None else min(first or due, due),
            last if due is None else max(last or due, due),
        ]
    return {k: (v[0], v[1], v[2]) for k, v in found.items()}


def _outlook(
    sequence: Sequence | None, person: Person, now: datetime
) -> tuple[tuple[str, str | None, str | None, str], datetime | None]:
    received = person.progress.passed
    position = max(received, key=lambda s: (_index(sequence, s), s), default=NOT_STARTED)
    pending_step = person.pending[0] if person.pending else None
    if sequence is None:
        return (position, pending_step, None, "cancelled: the sequence file was removed"), None
    if person.pending is not None and sequence.step(person.pending[0]) is not None:
        return (position, pending_step, pending_step, "as scheduled"), person.pending[1]
    step = next_step(sequence, received)
    if step is None:
        return (position, pending_step, None, "completes: no step left for them"), None
    after = person.progress.last_sent or person.enrolled_at
    due = max(plan_due(after, step, sequence, subscriber_zone(person.timezone, sequence)), now)
    change = f"re-planned: {pending_step} is no longer in the file" if pending_step else "planned"
    return (position, pending_step, step.id, change), due


def _index(sequence: Sequence | None, step_id: str) -> int:
    if sequence is None:
        return -1
    return next((i for i, s in enumerate(sequence.steps) if s.id == step_id), -1)


#: The steps the people in flight were sent from; the file on disk is an edit of it.
ORIGINAL = ["welcome", "second", "third", "fourth", "fifth"]
ZONES = [None, "America/New_York", "Europe/Berlin", "Asia/Kolkata", "Pacific/Auckland"]
NOW = datetime(2026, 3, 27, 15, 30, tzinfo=UTC)  # two days before Europe's clocks change


def write_edited_files(sequences_dir: Path, rng: random.Random) -> SequenceCatalog:
    """Rewrite quick.yaml as a random edit of `ORIGINAL` (steps removed, renamed, inserted,
    moved; delays in days; a weekday window); the catalog it loads into."""
    path = sequences_dir / "quick.yaml"
    data = yaml.safe_load(path.read_text())
    steps = [s for s in ORIGINAL if rng.random() < 0.75]
    if rng.random() < 0.5 and steps:
        steps[rng.randrange(len(steps))] += "-renamed"
    steps.insert(rng.randrange(len(steps) + 1), "bonus")
    if rng.random() < 0.3:
        rng.shuffle(steps)
    data["send_window"] = {
        "days": ["mon", "tue", "wed", "thu", "fri"],
        "start": "08:00",
        "end": "18:00",
    }
    data["steps"] = [
        {
            "id": step,
            "delay": f"{rng.choice([0, 1, 2, 3])}d",
            "subject": step,
            "template": "quick/second.html",
        }
        for step in steps
    ]
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return SequenceCatalog.load(sequences_dir, postal_address="1 Example Street")


def seed_people(session: Session, rng: random.Random, *, people: int) -> None:
    """People in flight on quick (sent from `ORIGINAL`) and on `gone`, whose file was
    removed: runs, resends, confirmations, skipped and failed steps, one pending row at most."""
    for n in range(people):
        contact = Contact(email=f"p{n}@example.com", email_hash=f"h{n}", timezone=rng.choice(ZONES))
        session.add(contact)
        session.flush()
        for sequence_id in (
            ("quick", "gone") if rng.random() < 0.3 else (rng.choice(["quick", "gone"]),)
        ):
            _enrol(session, rng, contact, sequence_id)
    session.commit()


def _enrol(session: Session, rng: random.Random, contact: Contact, sequence_id: str) -> None:
    run = rng.choice([0, 0, 1])
    enrolled = NOW - timedelta(days=rng.uniform(0, 20))
    enrollment = Enrollment(
        contact_id=contact.id,
        sequence_id=sequence_id,
        status=rng.choice([EnrollmentStatus.ACTIVE] * 5 + [EnrollmentStatus.COMPLETED]),
        enrolled_at=enrolled,
        run=run,
    )
    session.add(enrollment)
    session.flush()
    numbers: Counter[str] = Counter()

    def row(
        step: str, status: DeliveryStatus, at: datetime, *, on_run: int, resend: bool = False
    ) -> None:
        session.add(
            Delivery(
                enrollment_id=enrollment.id,
                contact_id=contact.id,
                sequence_id=sequence_id,
                step_id=step,
                resend_number=numbers[step],
                run=on_run,
                resend=resend,
                status=status,
                due_at=at,
                sent_at=at if status is DeliveryStatus.SENT else None,
                sequence_version="v1",
            )
        )
        numbers[step] += 1

    at = enrolled
    if run and rng.random() < 0.7:  # the earlier run's rows never count
        for step in ORIGINAL[: rng.randrange(len(ORIGINAL) + 1)]:
            row(step, DeliveryStatus.SENT, at - timedelta(days=30), on_run=0)
    if rng.random() < 0.2:
        row(CONFIRM_STEP, DeliveryStatus.SENT, at, on_run=run)
    reached = rng.randrange(len(ORIGINAL) + 1)
    for step in ORIGINAL[:reached]:
        at += timedelta(hours=rng.uniform(1, 60))
        status = rng.choice(
            [DeliveryStatus.SENT] * 6
            + [DeliveryStatus.SKIPPED, DeliveryStatus.FAILED, DeliveryStatus.CANCELLED]
        )
        row(step, status, at, on_run=run)
        if rng.random() < 0.1:
            resent = rng.choice(
                [DeliveryStatus.SENT, DeliveryStatus.SCHEDULED, DeliveryStatus.FAILED]
            )
            row(step, resent, at + timedelta(hours=1), on_run=run, resend=True)
    if reached < len(ORIGINAL) and rng.random() < 0.8:
        pending = rng.choice(list(PENDING))
        row(ORIGINAL[reached], pending, NOW + timedelta(hours=rng.uniform(-30, 72)), on_run=run)


def outlooks_of(impact: Any) -> Outlooks:
    """`plan_changes`' groups of one sequence, keyed as `reference_outlooks`."""
    return {
        (g.position, g.pending, g.next_step, g.change): (g.people, g.first_due, g.last_due)
        for g in impact.groups
    }
