"""Pausing a sequence: while paused nothing of it is claimed or sent; resuming lets due steps go.

On resume each due step is sent, or skipped when it is later than the step's
`max_lateness`: that choice is made at send time and recorded on the delivery.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from drip.audit import record_audit
from drip.models import SequenceState


def paused_sequences(session: Session) -> set[str]:
    """The ids of the sequences paused now."""
    return set(session.scalars(select(SequenceState.sequence_id)))


def pause_sequence(
    session: Session, sequence_id: str, *, by: str, reason: str | None, now: datetime
) -> bool:
    """Pause `sequence_id`; False when it was already paused."""
    if session.get(SequenceState, sequence_id) is not None:
        return False
    session.add(SequenceState(sequence_id=sequence_id, paused_at=now, paused_by=by, reason=reason))
    record_audit(
        session, action="sequence.pause", operator=by, now=now, reason=reason, target=sequence_id
    )
    return True


def resume_sequence(
    session: Session, sequence_id: str, *, by: str, reason: str | None, now: datetime
) -> bool:
    """Resume `sequence_id`; False when it was not paused."""
    removed = session.execute(delete(SequenceState).where(SequenceState.sequence_id == sequence_id))
    if not getattr(removed, "rowcount", 0):
        return False
    record_audit(
        session, action="sequence.resume", operator=by, now=now, reason=reason, target=sequence_id
    )
    return True
