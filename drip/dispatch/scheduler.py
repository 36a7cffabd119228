"""The scheduler: every tick, recover lost work, then claim due rows and enqueue them.

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
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from drip.config import AmbiguousPolicy
from drip.db import utcnow
from drip.dispatch.claims import claim_due_deliveries, expired_sending, renew_lost_queued
from drip.errors import UnknownSequence
from drip.events.effects import apply_events, unprocessed_events
from drip.models import Contact, Delivery, DeliveryStatus, Enrollment, EnrollmentStatus
from drip.schedule.store import lease, plan_following
from drip.sequences.catalog import SequenceCatalog
from drip.signup.expiry import expire_unconfirmed

log = structlog.get_logger(__name__)

#: Seconds between looks for lost work (expired leases, unapplied events, stale signups).
RECOVERY_INTERVAL = 5.0

#: At most this many batches are claimed in one tick, so recovery runs between bursts.
MAX_BATCHES_PER_TICK = 50

Enqueue = Callable[[Sequence[int]], None]


@dataclass
class TickReport:
    claimed: int = 0
    renewed: int = 0
    resolved_sent: int = 0
    resent: int = 0
    marked_for_review: int = 0
    events_applied: int = 0
    confirmations_expired: int = 0
    enqueue_failures: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SchedulerPolicy:
    batch_size: int
    queue_lease: float
    send_lease: float
    ambiguous_policy: AmbiguousPolicy
    confirmation_ttl: float = 7 * 86400


class Scheduler:
    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        catalog: SequenceCatalog,
        enqueue: Enqueue,
        policy: SchedulerPolicy,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.sessions = sessions
        self.catalog = catalog
        self.enqueue = enqueue
        self.policy = policy
        self.clock = clock
        self._next_recovery: datetime | None = None

    def tick(self) -> TickReport:
        """One pass: recover expired leases, then claim and enqueue every due row."""
        report = TickReport()
        now = self.clock()
        if self._next_recovery is None or now >= self._next_recovery:
            # Leases are minutes long: looking for lost work every few seconds is plenty.
            self._recover(report)
            self._housekeep(report)
            self._next_recovery = now + timedelta(seconds=RECOVERY_INTERVAL)
        for _ in range(MAX_BATCHES_PER_TICK):
            with self.sessions() as session, session.begin():
                ids = claim_due_deliveries(
                    session,
                    now=self.clock(),
                    limit=self.policy.batch_size,
                    queue_lease=self.policy.queue_lease,
                )
            self._enqueue(ids, report, release=True)
            report.claimed += len(ids)
            if len(ids) < self.policy.batch_size:
                break
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

    def _enqueue(self, ids: Sequence[int], report: TickReport, *, release: bool) -> None:
        if not ids:
            return
        try:
            self.enqueue(ids)
        except Exception as exc:
            report.enqueue_failures += len(ids)
            log.warning("scheduler.enqueue_failed", count=len(ids), error=str(exc))
            if release:
                self._release(ids)

    def _release(self, ids: Sequence[int]) -> None:
        try:
            with self.sessions() as session, session.begin():
                session.execute(
                    update(Delivery)
                    .where(Delivery.id.in_(ids), Delivery.status == DeliveryStatus.QUEUED)
                    .values(status=DeliveryStatus.SCHEDULED, lease_until=None)
                )
        except Exception as exc:  # the lease will bring them back
            log.warning("scheduler.release_failed", count=len(ids), error=str(exc))

    def _recover(self, report: TickReport) -> None:
        now = self.clock()
        with self.sessions() as session, session.begin():
            renewed = renew_lost_queued(
                session, now=now, limit=self.policy.batch_size, queue_lease=self.policy.queue_lease
            )
        self._enqueue(renewed, report, release=False)
        report.renewed = len(renewed)

        to_enqueue: list[int] = []
        with self.sessions() as session, session.begin():
            for delivery_id, processed_at in expired_sending(
                session, now=now, limit=self.policy.batch_size
            ):
                if processed_at is not None:
                    nxt = self._settle_as_sent(session, delivery_id, processed_at)
                    report.resolved_sent += 1
                    to_enqueue.extend([nxt] if nxt else [])
                elif self.policy.ambiguous_policy is AmbiguousPolicy.RESEND:
                    session.execute(
                        update(Delivery)
                        .where(
                            Delivery.id == delivery_id, Delivery.status == DeliveryStatus.SENDING
                        )
                        .values(
                            status=DeliveryStatus.QUEUED,
                            lease_until=lease(now, self.policy.queue_lease),
                            updated_at=now,
                        )
                    )
                    to_enqueue.append(delivery_id)
                    report.resent += 1
                    log.warning("scheduler.ambiguous_resend", delivery_id=delivery_id)
                else:
                    session.execute(
                        update(Delivery)
                        .where(
                            Delivery.id == delivery_id, Delivery.status == DeliveryStatus.SENDING
                        )
                        .values(
                            status=DeliveryStatus.FAILED,
                            lease_until=None,
                            updated_at=now,
                            error="outcome unknown: the worker stopped mid-send and the provider "
                            "reported no processed event; review before resending",
                        )
                    )
                    report.marked_for_review += 1
        self._enqueue(to_enqueue, report, release=False)

    def _housekeep(self, report: TickReport) -> None:
        """Apply provider events whose message was lost; expire unconfirmed signups."""
        now = self.clock()
        with self.sessions() as session, session.begin():
            stale = unprocessed_events(
                session, older_than=now - timedelta(seconds=30), limit=self.policy.batch_size
            )
            report.events_applied = apply_events(session, stale, now=now) if stale else 0
        with self.sessions() as session, session.begin():
            report.confirmations_expired = expire_unconfirmed(
                session, older_than=now - timedelta(seconds=self.policy.confirmation_ttl), now=now
            )

    def _settle_as_sent(
        self, session: Session, delivery_id: int, processed_at: datetime
    ) -> int | None:
        delivery = session.get_one(Delivery, delivery_id)
        delivery.status = DeliveryStatus.SENT
        delivery.sent_at = processed_at
        delivery.lease_until = None
        delivery.error = None
        session.flush()
        log.info("scheduler.settled_from_event", delivery_id=delivery_id)
        enrollment = session.get_one(Enrollment, delivery.enrollment_id)
        contact = session.get_one(Contact, delivery.contact_id)
        if enrollment.status is not EnrollmentStatus.ACTIVE or not contact.is_subscribed:
            return None
        try:
            sequence = self.catalog.get(delivery.sequence_id).definition
        except UnknownSequence:
            return None
        return plan_following(
            session,
            enrollment=enrollment,
            contact=contact,
            sequence=sequence,
            now=self.clock(),
            queue_lease=self.policy.queue_lease,
        )
