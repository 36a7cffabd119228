"""What a change to the sequence files does to the people already in flight: `drip sequences plan`.

For every active enrollment it applies the live-edit rule to the files as they are now:
a pending step that is still in the file goes as scheduled; one that was removed or
renamed is cancelled and the next step is planned from the last send; steps inserted
before a subscriber's position are never sent to them. People are grouped by where they
are and what they get next, so a reviewer reads a few lines, not a row per person.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from drip.deliveries.progress import Progress, on_the_line
from drip.deliveries.transitions import PENDING
from drip.models import Contact, Delivery, Enrollment, EnrollmentStatus
from drip.schedule.planner import next_step, plan_due, subscriber_zone
from drip.sequences.catalog import SequenceCatalog
from drip.sequences.definition import Sequence

#: Where someone stands before their first email.
NOT_STARTED = "(not started)"


@dataclass
class Group:
    """People of one sequence who stand at the same step and get the same next step."""

    position: str
    pending: str | None
    next_step: str | None
    change: str
    people: int = 0
    first_due: datetime | None = None
    last_due: datetime | None = None

    def add(self, due: datetime | None) -> None:
        """Count one more person, due at `due` (None when nothing is due)."""
        self.people += 1
        if due is not None:
            self.first_due = min(self.first_due or due, due)
            self.last_due = max(self.last_due or due, due)

    def as_dict(self) -> dict[str, object]:
        """The group as JSON-ready values."""
        return {
            "position": self.position,
            "pending": self.pending,
            "next": self.next_step,
            "change": self.change,
            "people": self.people,
            "first_due": self.first_due.isoformat() if self.first_due else None,
            "last_due": self.last_due.isoformat() if self.last_due else None,
        }


@dataclass
class SequenceImpact:
    """What the current file of one sequence does to the people in flight."""

    sequence_id: str
    version: str | None
    live_versions: set[str] = field(default_factory=set)
    active: int = 0
    unreached_steps: list[str] = field(default_factory=list)
    removed_steps: list[str] = field(default_factory=list)
    groups: list[Group] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        """Whether the file differs from what the people in flight were sent from."""
        return bool(
            self.unreached_steps
            or self.removed_steps
            or self.version is None
            or self.live_versions - {self.version}
        )

    def as_dict(self) -> dict[str, object]:
        """The impact as JSON-ready values."""
        return {
            "sequence": self.sequence_id,
            "version": self.version,
            "changed": self.changed,
            "live_versions": sorted(self.live_versions),
            "active": self.active,
            "unreached_steps": self.unreached_steps,
            "removed_steps": self.removed_steps,
            "groups": [g.as_dict() for g in self.groups],
        }


def plan_changes(
    session: Session, catalog: SequenceCatalog, *, now: datetime
) -> list[SequenceImpact]:
    """The effect of the current files on every sequence that has deliveries or a file."""
    ids = set(session.scalars(select(Delivery.sequence_id).distinct())) | {
        s.definition.id for s in catalog
    }
    return [_impact(session, catalog, sequence_id, now) for sequence_id in sorted(ids)]


def _impact(
    session: Session, catalog: SequenceCatalog, sequence_id: str, now: datetime
) -> SequenceImpact:
    loaded = catalog.get(sequence_id) if sequence_id in catalog else None
    sequence = loaded.definition if loaded else None
    impact = SequenceImpact(sequence_id, loaded.version if loaded else None)
    seen = set(
        session.scalars(
            select(Delivery.step_id).where(Delivery.sequence_id == sequence_id).distinct()
        )
    )
    impact.live_versions = {
        v
        for v in session.scalars(
            select(Delivery.sequence_version)
            .where(Delivery.sequence_id == sequence_id, Delivery.sequence_version.is_not(None))
            .distinct()
        )
        if v
    }
    file_steps = [s.id for s in sequence.steps] if sequence else []
    impact.unreached_steps = [s for s in file_steps if s not in seen]
    impact.removed_steps = sorted(seen - set(file_steps))

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
            continue  # enrolled, no row yet
        person.progress.add(
            step_id=row.step_id,
            status=row.status,
            sent_at=row.sent_at,
            number=row.resend_number,
            resend=row.resend,
        )
        if row.status in PENDING and on_the_line(resend=row.resend, step_id=row.step_id):
            person.pending = (row.step_id, row.due_at)
    groups: dict[tuple[str, str | None, str | None, str], Group] = {}
    for person in people.values():
        impact.active += 1
        key, due = _outlook(sequence, person, now)
        groups.setdefault(key, Group(*key)).add(due)
    order = {step: i for i, step in enumerate(file_steps)}
    impact.groups = sorted(groups.values(), key=lambda g: (order.get(g.position, -1), g.change))
    return impact


@dataclass
class Person:
    """One enrollment in flight: its progress by the shared rule, and its pending row."""

    enrolled_at: datetime
    timezone: str | None
    progress: Progress = field(default_factory=Progress)
    pending: tuple[str, datetime] | None = None


def _outlook(
    sequence: Sequence | None, person: Person, now: datetime
) -> tuple[tuple[str, str | None, str | None, str], datetime | None]:
    """(position, pending step, next step, change) and when, for one enrollment."""
    received = person.progress.passed
    position = max(received, key=lambda s: _index(sequence, s), default=NOT_STARTED)
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
