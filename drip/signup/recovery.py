"""The scheduler's job for the signup stage: close confirmation requests left unanswered."""

from __future__ import annotations

from datetime import timedelta

from drip.dispatch.recovery import Recovery
from drip.signup.expiry import expire_unconfirmed


def expire_stale_confirmations(recovery: Recovery) -> dict[str, int]:
    """Close requests older than DRIP_CONFIRMATION_TTL (see `expire_unconfirmed`)."""
    older_than = recovery.now - timedelta(seconds=recovery.confirmation_ttl)
    with recovery.sessions() as session, session.begin():
        expired = expire_unconfirmed(session, older_than=older_than, now=recovery.now)
    return {"confirmations_expired": expired}
