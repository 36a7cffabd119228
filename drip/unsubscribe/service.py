"""`unsubscribe_contact` and `leave_sequence`: one transaction after which no email (of
everything, or of one sequence) leaves for the contact.

Both lock the contact row for update (`drip.contacts.lifecycle`): a send in flight holds
that row for share, so the unsubscribe waits for it to finish, and every send that starts
later sees the new state. Everything still scheduled or queued is cancelled.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from drip.contacts.lifecycle import end_enrollments, lock_contact, stop_contact
from drip.models import ContactStatus


def unsubscribe_contact(session: Session, public_id: str, *, reason: str, now: datetime) -> bool:
    """Unsubscribe the contact with `public_id`; False when there is no such contact."""
    contact = lock_contact(session, public_id=public_id)
    if contact is None:
        return False
    stop_contact(session, contact, status=ContactStatus.UNSUBSCRIBED, reason=reason, now=now)
    return True


def leave_sequence(session: Session, public_id: str, sequence_id: str, *, now: datetime) -> bool:
    """Stop one sequence for the contact, who stays subscribed to any other."""
    contact = lock_contact(session, public_id=public_id)
    if contact is None:
        return False
    end_enrollments(
        session,
        contact.id,
        reason="left the sequence by the unsubscribe page",
        now=now,
        sequence_id=sequence_id,
        finished_too=True,
    )
    return True
