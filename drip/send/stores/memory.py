"""The sender's store in memory: the same moves, checked against the same transition table,
for fast tests of the batch path without a database.

Rows are plain `Delivery` objects kept in dicts; a lock stands in for the transactions
(the twin serialises batches, as SQLite does). What follows a recorded end is decided by
the same `follow_up` rule and planned by the same pure planner as on the database.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

from drip.deliveries.leases import lease
from drip.deliveries.outcomes import Ended, Recorded, follow_up
from drip.deliveries.planning import FollowUp
from drip.deliveries.progress import Progress
from drip.deliveries.transitions import Move, transition
from drip.models import Contact, Delivery, DeliveryStatus, Enrollment, EnrollmentStatus
from drip.schedule.planner import next_step, plan_due, subscriber_zone
from drip.send.decisions import Facts
from drip.send.stores.base import FactNeeds


@dataclass
class MemorySendStore:
    """Deliveries, contacts and enrollments in dicts, by id."""

    deliveries: dict[int, Delivery] = field(default_factory=dict)
    contacts: dict[int, Contact] = field(default_factory=dict)
    enrollments: dict[int, Enrollment] = field(default_factory=dict)
    paused: set[str] = field(default_factory=set)
    #: Each contact's events (name, when) and the sequences whose file it downloaded.
    events: dict[int, list[tuple[str, datetime]]] = field(default_factory=dict)
    downloads: dict[int, set[str]] = field(default_factory=dict)
    #: When the provider reported each delivery processed.
    processed: dict[int, datetime] = field(default_factory=dict)
    _lock: threading.RLock = field(default_factory=threading.RLock)

    def add(self, delivery: Delivery) -> Delivery:
        """Keep a new row, giving it the next id."""
        with self._lock:
            delivery.id = max(self.deliveries, default=0) + 1
            delivery.attempts = delivery.attempts or 0
            delivery.resend = bool(delivery.resend)
            delivery.resend_number = delivery.resend_number or 0
            self.deliveries[delivery.id] = delivery
            return delivery

    def claim(
        self, delivery_ids: Sequence[int], *, now: datetime, send_lease: float
    ) -> list[Delivery]:
        """See `SendStore.claim`."""
        with self._lock:
            claimed = []
            for delivery_id in delivery_ids:
                row = self.deliveries.get(delivery_id)
                if row is not None and self._move(row, Move.CLAIM_SEND):
                    row.attempts += 1
                    row.lease_until = lease(now, send_lease)
                    claimed.append(row)
            return claimed

    @contextmanager
    def guard(self) -> Iterator[MemorySendStore]:
        """See `SendStore.guard`: the twin holds its lock for the whole batch."""
        with self._lock:
            yield self

    def facts(
        self, claimed: Sequence[Delivery], needs: FactNeeds = FactNeeds()
    ) -> dict[int, Facts]:
        """See `Guard.facts`."""
        found = {}
        for delivery in claimed:
            enrollment = self.enrollments.get(delivery.enrollment_id)
            if enrollment is not None:
                contact = self.contacts[enrollment.contact_id]
                since = needs.sent_since
                found[enrollment.id] = Facts(
                    contact,
                    enrollment,
                    enrollment.sequence_id in self.paused,
                    tuple(self.events.get(contact.id, ())) if needs.events else (),
                    frozenset(self.downloads.get(contact.id, ()))
                    if needs.downloads
                    else frozenset(),
                    tuple(
                        d.sent_at
                        for d in self.deliveries.values()
                        if since is not None
                        and d.contact_id == contact.id
                        and d.status is DeliveryStatus.SENT
                        and d.sent_at is not None
                        and d.sent_at > since
                    ),
                )
        return found

    def reported_processed(self, delivery_ids: Sequence[int]) -> dict[int, datetime]:
        """See `Guard.reported_processed`."""
        return {d: self.processed[d] for d in delivery_ids if d in self.processed}

    def retry_later(
        self, delivery_id: int, *, now: datetime, lease_until: datetime, attempts: int, error: str
    ) -> None:
        """See `Guard.retry_later`."""
        row = self.deliveries[delivery_id]
        if self._move(row, Move.RETRY_LATER):
            row.lease_until, row.attempts, row.error = lease_until, attempts, error

    def await_event(self, delivery_id: int, *, now: datetime, wait: float, error: str) -> None:
        """See `Guard.await_event`."""
        row = self.deliveries[delivery_id]
        if self._move(row, Move.AWAIT_EVENT):
            row.lease_until, row.error = lease(now, wait), error

    def record(self, ended: Sequence[Ended], *, now: datetime, queue_lease: float) -> Recorded:
        """See `Guard.record`."""
        recorded = Recorded()
        for end in ended:
            row = self.deliveries[end.delivery.id]
            if not self._move(row, end.move):
                continue
            row.lease_until = None
            for column, value in end.values.items():
                setattr(row, column, value)
            recorded.ids.add(row.id)
            request = follow_up(end)
            if request is None:
                continue
            nxt = self._plan(request, now)
            if nxt is not None and nxt.status is DeliveryStatus.QUEUED:
                nxt.lease_until = lease(now, queue_lease)
                recorded.next_due[row.id] = nxt.id
        return recorded

    def progress(self, enrollment_id: int) -> Progress:
        """An enrollment's progress, by the same rule as `read_progress_many`."""
        current, run = Progress(), self.enrollments[enrollment_id].run or 0
        for row in self.deliveries.values():
            if row.enrollment_id == enrollment_id:
                current.add(
                    step_id=row.step_id,
                    status=row.status,
                    sent_at=row.sent_at,
                    number=row.resend_number,
                    resend=row.resend,
                    current=(row.run or 0) == run,
                )
        return current

    def _plan(self, request: FollowUp, now: datetime) -> Delivery | None:
        """`plan_many` for one request, in memory."""
        enrollment, contact, sequence = request.enrollment, request.contact, request.sequence
        current = self.progress(enrollment.id)
        if current.pending:
            return None
        after = request.sent_at or current.last_sent or enrollment.enrolled_at
        step = next_step(sequence, current.passed)
        if step is None:
            enrollment.status, enrollment.ended_at = EnrollmentStatus.COMPLETED, after
            return None
        due = plan_due(after, step, sequence, subscriber_zone(contact.timezone, sequence))
        move = Move.PLAN_NOW if due <= now else Move.PLAN_LATER
        return self.add(
            Delivery(
                enrollment_id=enrollment.id,
                contact_id=contact.id,
                sequence_id=sequence.id,
                step_id=step.id,
                run=enrollment.run or 0,
                resend_number=current.highest.get(step.id, -1) + 1,
                status=transition(move).target,
                due_at=due,
            )
        )

    @staticmethod
    def _move(row: Delivery, move: Move) -> bool:
        """Apply `move` to `row` if the row is in one of its sources."""
        step = transition(move)
        if row.status not in step.sources:
            return False
        row.status = step.target
        return True
