"""What a change to the sequence files does to the people already in flight: `drip sequences plan`.

For every active enrollment it applies the live-edit rule to the files as they are now:
a pending step that is still in the file goes as scheduled; one that was removed or
renamed is cancelled and the next step is planned from the last send; steps inserted
before a subscriber's position are never sent to them. People are grouped by where they
are and what they get next, so a reviewer reads a few lines, not a row per person.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from drip.models import PENDING, Contact, Delivery, DeliveryStatus, Enrollment, EnrollmentStatus
from drip.schedule.planner import next_step, plan_due
from drip.sequences.catalog import SequenceCatalog
from drip.sequences.definition import Sequence

#: Where someone stands before their first email.
NOT_STARTED = "(not started)"


@dataclass
class Group:
    position: str
    pending: str | None
    next_step: str | None
    change: str
    people: int = 0
    first_due: datetime | None = None
    last_due: datetime | None = None

    def add(self, due: datetime | None) -> None:
        self.people += 1
        if due is not None:
            self.first_due = min(self.first_due or due, due)
            self.last_due = max(self.last_due or due, due)

    def as_dict(self) -> dict[str, object]:
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
    sequence_id: str
    version: str | None
    live_versions: set[str] = field(default_factory=set)
    active: int = 0
    unreached_steps: list[str] = field(default_factory=list)
    removed_steps: list[str] = field(default_factory=list)
    groups: list[Group] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(
            self.unreached_steps
            or self.removed_steps
            or self.version is None
            or self.live_versions - {self.version}
        )

    def as_dict(self) -> dict[str, object]:
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
            Enrollment.id,
            Enrollment.enrolled_at,
            Contact.timezone,
            Delivery.step_id,
            Delivery.status,
            Delivery.due_at,
            Delivery.sent_at,
        )
        .join(Contact, Contact.id == Enrollment.contact_id)
        .outerjoin(Delivery, Delivery.enrollment_id == Enrollment.id)
        .where(Enrollment.sequence_id == sequence_id, Enrollment.status == EnrollmentStatus.ACTIVE)
        .order_by(Enrollment.id)
    ).all()
    people: dict[int, list[tuple[object, ...]]] = defaultdict(list)
    for row in rows:
        people[row[0]].append(tuple(row))
    groups: dict[tuple[str, str | None, str | None, str], Group] = {}
    for deliveries in people.values():
        impact.active += 1
        key, due = _outlook(sequence, deliveries, now)
        groups.setdefault(key, Group(*key)).add(due)
    order = {step: i for i, step in enumerate(file_steps)}
    impact.groups = sorted(groups.values(), key=lambda g: (order.get(g.position, -1), g.change))
    return impact


def _outlook(
    sequence: Sequence | None, deliveries: list[tuple[object, ...]], now: datetime
) -> tuple[tuple[str, str | None, str | None, str], datetime | None]:
    """(position, pending step, next step, change) and when, for one enrollment's rows."""
    enrolled_at, timezone = deliveries[0][1], deliveries[0][2]
    sent = [(d[3], d[6]) for d in deliveries if d[4] == DeliveryStatus.SENT]
    received = {str(step) for step, _ in sent}
    last_sent = max((at for _, at in sent if isinstance(at, datetime)), default=None)
    pending = next(((str(d[3]), d[5]) for d in deliveries if d[4] in PENDING), None)
    position = max(received, key=lambda s: _index(sequence, s), default=NOT_STARTED)
    pending_step = pending[0] if pending else None
    if sequence is None:
        return (position, pending_step, None, "cancelled: the sequence file was removed"), None
    if pending is not None and sequence.step(pending[0]) is not None:
        due = pending[1] if isinstance(pending[1], datetime) else None
        return (position, pending_step, pending[0], "as scheduled"), due
    step = next_step(sequence, received)
    if step is None:
        return (position, pending_step, None, "completes: no step left for them"), None
    after = last_sent or (enrolled_at if isinstance(enrolled_at, datetime) else now)
    due = max(plan_due(after, step, sequence, ZoneInfo(str(timezone or sequence.timezone))), now)
    change = f"re-planned: {pending_step} is no longer in the file" if pending_step else "planned"
    return (position, pending_step, step.id, change), due


def _index(sequence: Sequence | None, step_id: str) -> int:
    if sequence is None:
        return -1
    return next((i for i, s in enumerate(sequence.steps) if s.id == step_id), -1)
