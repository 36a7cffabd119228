"""The scheduler's job for contact events: apply those whose message was lost, and those a
signup attached to its new contact (`apply_stale_contact_events`, in `RECOVERY_JOBS`)."""

from __future__ import annotations

from datetime import timedelta

from drip.dispatch.recovery import Recovery
from drip.events.contact_actor import apply_each
from drip.events.contact_apply import sequence_reaction, unapplied_events

#: An event stored this long ago and not applied lost its message (or Redis was down);
#: the actor has had its chance.
STALE_AFTER = timedelta(seconds=30)


def apply_stale_contact_events(recovery: Recovery) -> dict[str, int]:
    """Apply attached contact events stored more than `STALE_AFTER` ago and never applied."""
    with recovery.sessions() as session, session.begin():
        stale = unapplied_events(
            session, older_than=recovery.now - STALE_AFTER, limit=recovery.batch_size
        )
    if not stale:
        return {"contact_events_applied": 0}
    applied, failed = apply_each(
        recovery.sessions,
        stale,
        react=sequence_reaction(),
        catalog=recovery.catalog,
        queue_lease=recovery.queue_lease,
        enqueue_committed=recovery.enqueue_committed,
    )
    return {"contact_events_applied": applied, "contact_events_failed": len(failed)}
