"""Applying an event another app sent: goals end runs, triggers start them.

The guarantee that no email of a sequence leaves after its goal event's 202 does not wait
for this: the event is committed under the contact's row lock before the answer, and every
send-time check reads the contact's events under that lock (`drip.send.decisions`). What
happens here, in the `drip.apply_contact_events` actor (or the scheduler's recovery for an
event whose message was lost), is the bookkeeping and what follows:

- goals: every open run of a sequence whose `exit:` names the event, begun at or before
  the event, ends as `converted`, and what it had pending is cancelled;
- triggers: every sequence whose `trigger:` names the event enrols the contact, if the
  contact is subscribed (a trigger never reaches an unsubscribed, suppressed or forgotten
  address, and never asks for a confirmation on its own), has no run of it open, did not
  leave it (a cancelled run: a signup after a leave needs a confirmation, which a trigger
  never asks for), and its `reentry:` allows a new run after a finished one (completed or
  converted). A trigger whose sequence also names the same event as a goal does nothing.
"""

from __future__ import annotations

from datetime import datetime

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from drip.contacts.lifecycle import end_enrollments, lock_contact
from drip.deliveries.planning import plan_first
from drip.models import Contact, ContactEvent, Enrollment, EnrollmentStatus
from drip.sequences.catalog import SequenceCatalog
from drip.sequences.definition import Sequence
from drip.webhooks.events import Event, EventType
from drip.webhooks.outbox import emit

log = structlog.get_logger(__name__)

#: Runs that may still send: a goal ends them, a trigger does not restart them.
OPEN = (EnrollmentStatus.ACTIVE, EnrollmentStatus.PENDING)


def apply_contact_event(
    session: Session,
    event: ContactEvent,
    *,
    catalog: SequenceCatalog,
    now: datetime,
    queue_lease: float,
) -> list[int]:
    """Apply `event`'s goals and triggers in the caller's transaction; return the ids of
    deliveries due at once, to enqueue after commit. An event of an address drip does not
    know yet is left for when it signs up."""
    if event.contact_id is None:
        return []
    contact = lock_contact(session, id=event.contact_id)
    if contact is None or contact.email is None:
        return []
    runs = {
        e.sequence_id: e
        for e in session.scalars(select(Enrollment).where(Enrollment.contact_id == contact.id))
    }
    for loaded in catalog:
        sequence = loaded.definition
        run = runs.get(sequence.id)
        if run is None or event.name not in sequence.goals or run.status not in OPEN:
            continue
        if event.occurred_at < run.enrolled_at:
            continue  # a goal met before this run began does not end it
        cancelled = end_enrollments(
            session,
            contact.id,
            reason=f"goal reached: {event.name}",
            now=now,
            sequence_id=sequence.id,
            status=EnrollmentStatus.CONVERTED,
        )
        log.info("reactions.converted", sequence=sequence.id, goal=event.name, cancelled=cancelled)
        data = {"sequence": sequence.id, "run": run.run, "goal": event.name}
        emit(session, [Event(EventType.ENROLLMENT_CONVERTED, contact.id, now, data)], now=now)
    session.flush()
    due: list[int] = []
    for loaded in catalog:
        sequence = loaded.definition
        if sequence.trigger is None or sequence.trigger.event != event.name:
            continue
        if event.name in sequence.goals:
            continue
        started = _start_run(session, contact, sequence, runs.get(sequence.id), now=now)
        if started is None:
            continue
        queued = plan_first(
            session,
            enrollment=started,
            contact=contact,
            sequence=sequence,
            now=now,
            queue_lease=queue_lease,
        )
        if queued is not None:
            due.append(queued)
        log.info("reactions.triggered", sequence=sequence.id, run=started.run)
    return due


def _start_run(
    session: Session,
    contact: Contact,
    sequence: Sequence,
    run: Enrollment | None,
    *,
    now: datetime,
) -> Enrollment | None:
    """The enrolment a trigger starts, or None when it starts nothing."""
    if not contact.is_subscribed:
        log.info("reactions.trigger_refused", sequence=sequence.id, status=contact.status.value)
        return None
    if run is None:
        enrollment = Enrollment(contact_id=contact.id, sequence_id=sequence.id, enrolled_at=now)
        session.add(enrollment)
        session.flush()
        return enrollment
    if run.status in OPEN:
        return None  # never restarted in the middle of a run
    if run.status is EnrollmentStatus.CANCELLED:
        # The subscriber left it (or never confirmed it): only their own confirmed signup
        # brings them back.
        log.info("reactions.trigger_refused", sequence=sequence.id, status=run.status.value)
        return None
    if not sequence.reentry.allows(last_began=run.enrolled_at, now=now):
        return None
    run.run += 1
    run.status, run.enrolled_at, run.ended_at = EnrollmentStatus.ACTIVE, now, None
    session.flush()
    return run
