"""Apply stored contact events (`POST /v1/events`) to the contact's sequences, each once.

What an event does (a trigger enrols, a goal ends a run) is `drip.reactions`'s rule; this
module only makes sure it happens once per event, in the lock order every writer of a
contact follows: the contact's row first (`lock_contact`, as unsubscribe and `forget` do),
then the event's row. Two appliers of one event (its message and the scheduler's recovery)
therefore queue on the contact, and the second finds `applied_at` set and does nothing.

An event whose address is not a contact yet has nothing to apply to: it waits, unapplied,
until a signup attaches it (`drip.events.contact_store.attach_events`); the scheduler's
recovery then applies it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from drip.contacts.lifecycle import lock_contact
from drip.models import ContactEvent
from drip.sequences.catalog import SequenceCatalog


class Reaction(Protocol):
    """What an applied event does: `drip.reactions.apply_contact_event`; returns the ids of
    deliveries it queued, to enqueue after commit."""

    def __call__(
        self,
        session: Session,
        event: ContactEvent,
        *,
        catalog: SequenceCatalog,
        now: datetime,
        queue_lease: float,
    ) -> list[int]: ...


def sequence_reaction() -> Reaction:
    """The reaction drip runs: `drip.reactions.apply_contact_event`."""
    from drip.reactions import apply_contact_event

    return apply_contact_event


def apply_contact_event(
    session: Session,
    event_id: int,
    *,
    react: Reaction,
    catalog: SequenceCatalog,
    now: datetime,
    queue_lease: float,
) -> list[int] | None:
    """Apply one stored event unless it was applied or has no contact; the deliveries to
    enqueue after commit, or None when there was nothing to do."""
    contact_id = session.scalar(
        select(ContactEvent.contact_id).where(
            ContactEvent.id == event_id, ContactEvent.applied_at.is_(None)
        )
    )
    if contact_id is None or lock_contact(session, id=contact_id) is None:
        return None
    event = session.scalars(
        select(ContactEvent)
        .where(
            ContactEvent.id == event_id,
            ContactEvent.applied_at.is_(None),
            ContactEvent.contact_id == contact_id,
        )
        .with_for_update()
    ).one_or_none()
    if event is None:  # applied meanwhile, or detached by the contact's deletion
        return None
    queued = react(session, event, catalog=catalog, now=now, queue_lease=queue_lease)
    event.applied_at = now
    return queued


def unapplied_events(session: Session, *, older_than: datetime, limit: int) -> list[int]:
    """Attached events stored before `older_than` and never applied (their message was
    lost, Redis was down, or a signup attached them), oldest first."""
    return list(
        session.scalars(
            select(ContactEvent.id)
            .where(
                ContactEvent.applied_at.is_(None),
                ContactEvent.contact_id.is_not(None),
                ContactEvent.received_at < older_than,
            )
            .order_by(ContactEvent.received_at)
            .limit(limit)
        )
    )


def unapplied_events_of(session: Session, contact_id: int) -> list[int]:
    """The contact's events not applied yet (those a signup just attached, for one)."""
    return list(
        session.scalars(
            select(ContactEvent.id)
            .where(ContactEvent.contact_id == contact_id, ContactEvent.applied_at.is_(None))
            .order_by(ContactEvent.id)
        )
    )


#: Enqueues committed `queued` deliveries (or hands them back); True when Redis took them.
EnqueueCommitted = Callable[[list[int]], bool]
