"""What a change to the sequence files does to the people already in flight: `drip sequences plan`.

For every active enrollment it applies the live-edit rule to the files as they are now:
a pending step that is still in the file goes as scheduled; one that was removed or
renamed is cancelled and the next step is planned from the last send; steps inserted
before a subscriber's position are never sent to them. People are grouped by where they
are and what they get next, so a reviewer reads a few lines, not a row per person.

The counting is done in SQL (`drip.schedule.standings`): a few rows per sequence come back,
whatever the number of people, and only the groups whose pending step is gone have their
new due times worked out here, from the earliest and latest last send per zone (a later
last send is never due earlier). With a daily cap, each group also says how many of its
people's next emails the cap would postpone, and to when at the earliest
(`drip.schedule.cap_forecast`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import or_, select, text
from sqlalchemy.orm import Session

from drip.models import Delivery, Enrollment
from drip.schedule.cap_forecast import (
    crowded_contacts,
    crowded_rows,
    held_until,
    read_crowded,
    read_lines,
)
from drip.schedule.planner import fit_window, next_step, plan_due, subscriber_zone
from drip.schedule.standings import UNFILED, Standing, enrolment_rows, read_standings
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
    #: How many of their next emails the daily cap would postpone, and the earliest to.
    postponed: int = 0
    postponed_to: datetime | None = None

    def add(self, people: int, first: datetime | None, last: datetime | None) -> None:
        """Count `people` more, due from `first` to `last` (None when nothing is due)."""
        self.people += people
        if first is not None and last is not None:
            self.first_due = min(self.first_due or first, first)
            self.last_due = max(self.last_due or last, last)

    def postpone(self, to: datetime) -> None:
        """Count one more person whose next email the daily cap moves to `to`."""
        self.postponed += 1
        self.postponed_to = min(self.postponed_to or to, to)

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
            "postponed_by_cap": self.postponed,
            "postponed_to": self.postponed_to.isoformat() if self.postponed_to else None,
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


#: A group's key: (position, pending step, next step, change).
Key = tuple[str, str | None, str | None, str]


def plan_changes(
    session: Session,
    catalog: SequenceCatalog,
    *,
    now: datetime,
    daily_cap: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> list[SequenceImpact]:
    """The effect of the current files on every sequence that has deliveries or a file;
    `daily_cap` (0: none) adds what the cap would postpone; `progress(done, total)` is
    called after each sequence."""
    if session.get_bind().dialect.name == "postgresql":
        # Compiling these few big aggregates costs seconds (1.8 to 3 s of 14 s at 800,000
        # in flight) and saves nothing: this transaction only, it is a read.
        session.execute(text("SET LOCAL jit = off"))
    seen: dict[str, tuple[set[str], set[str]]] = {s.definition.id: (set(), set()) for s in catalog}
    for sequence_id, step_id, version in session.execute(
        select(Delivery.sequence_id, Delivery.step_id, Delivery.sequence_version).group_by(
            Delivery.sequence_id, Delivery.step_id, Delivery.sequence_version
        )
    ):
        steps, versions = seen.setdefault(sequence_id, (set(), set()))
        steps.add(step_id)
        if version:
            versions.add(version)
    impacts = []
    for done, sequence_id in enumerate(sorted(seen), 1):
        impacts.append(_impact(session, catalog, sequence_id, *seen[sequence_id], now, daily_cap))
        if progress is not None:
            progress(done, len(seen))
    return impacts


def _impact(
    session: Session,
    catalog: SequenceCatalog,
    sequence_id: str,
    seen: set[str],
    versions: set[str],
    now: datetime,
    daily_cap: int,
) -> SequenceImpact:
    loaded = catalog.get(sequence_id) if sequence_id in catalog else None
    sequence = loaded.definition if loaded else None
    impact = SequenceImpact(sequence_id, loaded.version if loaded else None, versions)
    file_steps = [s.id for s in sequence.steps] if sequence else []
    impact.unreached_steps = [s for s in file_steps if s not in seen]
    impact.removed_steps = sorted(seen - set(file_steps))
    groups: dict[Key, Group] = {}
    for standing in read_standings(session, sequence_id, file_steps):
        impact.active += standing.people
        key, first, last = _outlook(sequence, standing, now)
        groups.setdefault(key, Group(*key)).add(standing.people, first, last)
    if daily_cap and sequence is not None and groups:
        _forecast_cap(session, sequence, groups, cap=daily_cap, now=now)
    order = {step: i for i, step in enumerate(file_steps)}
    impact.groups = sorted(
        groups.values(),
        key=lambda g: (order.get(g.position, -1), g.change, g.pending or "", g.next_step or ""),
    )
    return impact


def _position(sequence: Sequence | None, furthest: int | None, unfiled: str | None) -> str:
    """The step a person stands at: the furthest of the file they received, else the
    received step outside it, else not started."""
    if sequence is not None and furthest is not None and furthest != UNFILED:
        return sequence.steps[furthest].id
    return unfiled or NOT_STARTED


def _outlook(
    sequence: Sequence | None, standing: Standing, now: datetime
) -> tuple[Key, datetime | None, datetime | None]:
    """(position, pending step, next step, change) and the span of due times, for people
    who stand alike."""
    position = _position(sequence, standing.furthest, standing.unfiled)
    pending = standing.pending
    if sequence is None:
        return (position, pending, None, "cancelled: the sequence file was removed"), None, None
    if pending is not None and sequence.step(pending) is not None:
        return (position, pending, pending, "as scheduled"), standing.first_due, standing.last_due
    received = {position} if position != NOT_STARTED else set()
    step = next_step(sequence, received & {s.id for s in sequence.steps})
    if step is None:
        return (position, pending, None, "completes: no step left for them"), None, None
    zone = subscriber_zone(standing.timezone, sequence)
    assert standing.first_after is not None
    assert standing.last_after is not None
    first, last = (
        max(plan_due(after, step, sequence, zone), now)
        for after in (standing.first_after, standing.last_after)
    )
    change = f"re-planned: {pending} is no longer in the file" if pending else "planned"
    return (position, pending, step.id, change), first, last


def _forecast_cap(
    session: Session, sequence: Sequence, groups: dict[Key, Group], *, cap: int, now: datetime
) -> None:
    """Count in each group the people whose pending email the daily cap would postpone."""
    file_steps = [s.id for s in sequence.steps]
    crowded = crowded_rows(session, cap=cap, now=now)
    # Only the enrolments of crowded rows are counted again: a few, whatever the list's size.
    only = select(Delivery.enrollment_id).where(Delivery.id.in_(select(crowded.c.delivery_id)))
    one = enrolment_rows(sequence.id, file_steps, only=only)
    rows = session.execute(
        select(one.c.furthest, one.c.unfiled, one.c.pending, one.c.timezone, crowded)
        .join(crowded, crowded.c.delivery_id == one.c.pending_id)
        .where(one.c.pending.in_(file_steps))
    )
    for row in rows:
        opens = read_crowded(row, cap).opens(cap)
        if opens is None:
            continue
        step = sequence.step(row.pending)
        assert step is not None
        zone = subscriber_zone(row.timezone, sequence)
        position = _position(sequence, row.furthest, row.unfiled)
        key = (position, row.pending, row.pending, "as scheduled")
        groups[key].postpone(fit_window(opens, sequence.window_for(step), zone))
    if any(key[2] not in (None, key[1]) for key in groups):
        _forecast_replanned(session, sequence, groups, cap=cap, now=now)


def _forecast_replanned(
    session: Session, sequence: Sequence, groups: dict[Key, Group], *, cap: int, now: datetime
) -> None:
    """The same for people whose pending step is gone (or who have none): their next due is
    worked out here, one by one, for the contacts with at least `cap` emails on their line."""
    file_steps = [s.id for s in sequence.steps]
    contacts = crowded_contacts(cap=cap, now=now)
    one = enrolment_rows(
        sequence.id,
        file_steps,
        only=select(Enrollment.id).where(Enrollment.contact_id.in_(contacts)),
    )
    chosen = or_(one.c.pending.is_(None), one.c.pending.not_in(file_steps))
    people = session.execute(select(one).where(chosen)).all()
    if not people:
        return
    lines = read_lines(session, select(one.c.contact_id).where(chosen), now=now)
    for person in people:
        alike = Standing(
            person.furthest,
            person.unfiled,
            person.pending,
            person.timezone,
            1,
            None,
            None,
            person.after,
            person.after,
        )
        key, due, _ = _outlook(sequence, alike, now)
        step = sequence.step(key[2]) if key[2] else None
        if due is None or step is None:
            continue
        opens = held_until(lines[person.contact_id], cap, due, cancelled=person.pending_id)
        if opens is not None:
            zone = subscriber_zone(person.timezone, sequence)
            groups[key].postpone(fit_window(opens, sequence.window_for(step), zone))
