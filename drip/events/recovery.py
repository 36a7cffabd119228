"""The scheduler's job for the events stage: apply events whose message was lost."""

from __future__ import annotations

from datetime import timedelta

from drip.dispatch.recovery import Recovery
from drip.events.effects import apply_events, unprocessed_events

#: An event stored this long ago and not applied lost its message (or Redis was down).
STALE_AFTER = timedelta(seconds=30)


def apply_stale_events(recovery: Recovery) -> dict[str, int]:
    """Apply provider events stored but never applied."""
    with recovery.sessions() as session, session.begin():
        stale = unprocessed_events(
            session, older_than=recovery.now - STALE_AFTER, limit=recovery.batch_size
        )
        applied = apply_events(session, stale, now=recovery.now) if stale else 0
    return {"events_applied": applied}
