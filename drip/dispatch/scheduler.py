"""The scheduler: every tick, run the recovery jobs now and then, then claim due rows and
enqueue them.

Messages are enqueued only after the claim commits, and carry delivery ids only. If
Redis refuses the enqueue, the rows go back to `scheduled` so the next tick retries
them; if even that fails, their lease runs out and they are renewed: nothing is lost.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog
from sqlalchemy.orm import Session, sessionmaker

from drip.config import AmbiguousPolicy
from drip.db import utcnow
from drip.deliveries.enqueue import Enqueue, enqueue_after_commit
from drip.deliveries.moves import claim_due
from drip.dispatch.recovery import Recovery, RecoveryJob, renew_lost_messages
from drip.events.contact_recovery import apply_stale_contact_events
from drip.events.recovery import apply_stale_events
from drip.retention.recovery import keep_event_retention
from drip.send.recovery import settle_sending
from drip.sequences.catalog import SequenceCatalog
from drip.signup.recovery import expire_stale_confirmations

log = structlog.get_logger(__name__)

#: Seconds between runs of the recovery jobs: leases are minutes long.
RECOVERY_INTERVAL = 5.0

#: At most this many batches are claimed in one tick, so recovery runs between bursts.
MAX_BATCHES_PER_TICK = 50

#: The recovery jobs, in the order they run: lost messages, lost answers, lost provider
#: events, lost events of other apps, stale confirmations, event retention (daily).
RECOVERY_JOBS: tuple[RecoveryJob, ...] = (
    ("renew_lost_messages", renew_lost_messages),
    ("settle_sending", settle_sending),
    ("apply_stale_events", apply_stale_events),
    ("apply_stale_contact_events", apply_stale_contact_events),
    ("expire_stale_confirmations", expire_stale_confirmations),
    ("keep_event_retention", keep_event_retention),
)

__all__ = ["RECOVERY_JOBS", "Enqueue", "Scheduler", "SchedulerPolicy", "TickReport"]


@dataclass
class TickReport:
    """What one tick did, by count."""

    claimed: int = 0
    renewed: int = 0
    resolved_sent: int = 0
    resent: int = 0
    marked_for_review: int = 0
    events_applied: int = 0
    contact_events_applied: int = 0
    contact_events_failed: int = 0
    confirmations_expired: int = 0
    webhooks_enqueued: int = 0
    enqueue_failures: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, counts: dict[str, int]) -> None:
        """Add a job's counts to the report."""
        for name, count in counts.items():
            setattr(self, name, getattr(self, name) + count)


@dataclass(frozen=True)
class SchedulerPolicy:
    """The scheduler's limits, from settings."""

    batch_size: int
    queue_lease: float
    send_lease: float
    ambiguous_policy: AmbiguousPolicy
    confirmation_ttl: float = 7 * 86400
    event_retention: timedelta = timedelta(days=180)


class Scheduler:
    """Claims due rows and runs the recovery jobs; any number may run at once."""

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        catalog: SequenceCatalog,
        enqueue: Enqueue,
        policy: SchedulerPolicy,
        clock: Callable[[], datetime] = utcnow,
        jobs: Sequence[RecoveryJob] = RECOVERY_JOBS,
    ) -> None:
        self.sessions = sessions
        self.catalog = catalog
        self.enqueue = enqueue
        self.policy = policy
        self.clock = clock
        self.jobs = tuple(jobs)
        self._next_recovery: datetime | None = None

    def tick(self) -> TickReport:
        """One pass: claim and enqueue every due row, then the recovery jobs when they are due.

        The claims come first so that a scheduler's first tick sends what is due before its
        housekeeping (the daily retention job may take seconds on a large table)."""
        report = TickReport()
        now = self.clock()
        for _ in range(MAX_BATCHES_PER_TICK):
            with self.sessions() as session, session.begin():
                ids = claim_due(
                    session,
                    now=self.clock(),
                    limit=self.policy.batch_size,
                    queue_lease=self.policy.queue_lease,
                )
            if not enqueue_after_commit(self.enqueue, self.sessions, ids, clock=self.clock):
                report.enqueue_failures += len(ids)
            report.claimed += len(ids)
            if len(ids) < self.policy.batch_size:
                break
        if self._next_recovery is None or now >= self._next_recovery:
            self._recover(report, now)
            self._next_recovery = now + timedelta(seconds=RECOVERY_INTERVAL)
        if report.claimed or report.renewed or report.resolved_sent or report.resent:
            log.info(
                "scheduler.tick",
                claimed=report.claimed,
                renewed=report.renewed,
                resolved_sent=report.resolved_sent,
                resent=report.resent,
                review=report.marked_for_review,
            )
        return report

    def run(self, stop: threading.Event, interval: float) -> None:
        """Tick every `interval` seconds until `stop` is set; a failed tick is logged, not fatal."""
        log.info("scheduler.started", interval=interval)
        while not stop.is_set():
            try:
                self.tick()
            except Exception as exc:  # the database may be restarting: try again next tick
                log.warning("scheduler.tick_failed", error=str(exc))
            stop.wait(interval)
        log.info("scheduler.stopped")

    def _recover(self, report: TickReport, now: datetime) -> None:
        recovery = Recovery(
            sessions=self.sessions,
            catalog=self.catalog,
            enqueue=self.enqueue,
            now=now,
            batch_size=self.policy.batch_size,
            queue_lease=self.policy.queue_lease,
            ambiguous_policy=self.policy.ambiguous_policy,
            confirmation_ttl=self.policy.confirmation_ttl,
            event_retention=self.policy.event_retention,
        )
        for name, job in self.jobs:
            try:
                report.add(job(recovery))
            except Exception as exc:  # one job's failure must not stop the others
                report.errors.append(f"{name}: {exc}")
                log.warning("scheduler.recovery_failed", job=name, error=str(exc))
