"""Recovery jobs: the scheduler's housekeeping, as a list of named jobs.

Each job is defined beside the stage it repairs (a lost message beside the dispatch, a
send whose answer was lost beside the sender, an event whose message was lost beside the
events, a stale confirmation beside the signup) and takes a `Recovery`: what it may use.
A job returns its counts by name for the tick's report; one that fails is logged and the
others still run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from drip.config import AmbiguousPolicy
from drip.deliveries.enqueue import Enqueue, enqueue_after_commit
from drip.deliveries.moves import renew_lost
from drip.sequences.catalog import SequenceCatalog


@dataclass(frozen=True)
class Recovery:
    """What a recovery job may use: the database, the files, the broker, the policy."""

    sessions: sessionmaker[Session]
    catalog: SequenceCatalog
    enqueue: Enqueue
    now: datetime
    batch_size: int
    queue_lease: float
    ambiguous_policy: AmbiguousPolicy
    confirmation_ttl: float
    #: Raw provider events older than this are counted, then removed (`drip.retention`).
    event_retention: timedelta = timedelta(days=180)

    def enqueue_committed(self, delivery_ids: list[int]) -> bool:
        """Enqueue rows this job committed as queued; hand them back if Redis refuses."""
        return enqueue_after_commit(
            self.enqueue, self.sessions, delivery_ids, clock=lambda: self.now
        )


#: A job: its name, and what it does (counts by name for the tick's report).
RecoveryJob = tuple[str, Callable[[Recovery], dict[str, int]]]


def renew_lost_messages(recovery: Recovery) -> dict[str, int]:
    """Queued rows whose message was lost (Redis restarted, a worker was killed with its
    prefetched messages) are leased and enqueued again."""
    with recovery.sessions() as session, session.begin():
        renewed = renew_lost(
            session,
            now=recovery.now,
            limit=recovery.batch_size,
            queue_lease=recovery.queue_lease,
        )
    recovery.enqueue_committed(renewed)
    return {"renewed": len(renewed)}
