"""Enqueue rows only after their transaction commits, and hand them back when Redis refuses.

Every caller that queues rows (a signup due at once, a confirmation, the scheduler's
claims and recoveries, an operator's resend or retry) commits them as `queued` first,
then calls `enqueue_after_commit`. If the broker refuses, the rows go back to
`scheduled` and the next scheduler tick claims them; if even that write fails (the
database is down too), their lease runs out and the scheduler renews them. Nothing is
lost either way, and no row is sent from an uncommitted transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

import structlog
from sqlalchemy.orm import Session, sessionmaker

from drip.db import utcnow
from drip.deliveries.moves import hand_back

log = structlog.get_logger(__name__)

#: Hands delivery ids to the broker; raises when the broker refuses them.
Enqueue = Callable[[Sequence[int]], None]


def enqueue_after_commit(
    enqueue: Enqueue,
    sessions: sessionmaker[Session],
    delivery_ids: Sequence[int],
    *,
    clock: Callable[[], datetime] = utcnow,
) -> bool:
    """Enqueue committed `queued` rows; on failure hand them back to the schedule.

    Returns True when the broker took them, False when they were handed back (or left to
    their lease). Never raises for a broker or database failure.
    """
    if not delivery_ids:
        return True
    try:
        enqueue(delivery_ids)
    except Exception as exc:
        log.warning("deliveries.enqueue_failed", count=len(delivery_ids), error=str(exc))
    else:
        return True
    try:
        with sessions() as session, session.begin():
            hand_back(session, delivery_ids, now=clock())
    except Exception as exc:  # the lease brings them back
        log.warning("deliveries.hand_back_failed", count=len(delivery_ids), error=str(exc))
    return False
