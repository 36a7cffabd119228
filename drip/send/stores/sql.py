"""The sender's store on the database: the statements of `drip.deliveries`."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from drip.db import is_postgresql
from drip.deliveries import moves
from drip.deliveries.outcomes import Ended, Recorded, record_outcomes
from drip.models import Contact, Delivery, Enrollment, SequenceState
from drip.send.decisions import Facts


class SqlGuard:
    """The guard transaction on a session."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def facts(self, claimed: Sequence[Delivery]) -> dict[int, Facts]:
        """One round trip for the batch: contacts locked for share in id order (PostgreSQL),
        their enrollments, and whether each sequence is paused."""
        query = (
            select(Contact, Enrollment, SequenceState.sequence_id)
            .join(Enrollment, Enrollment.contact_id == Contact.id)
            .outerjoin(SequenceState, SequenceState.sequence_id == Enrollment.sequence_id)
            .where(Enrollment.id.in_({d.enrollment_id for d in claimed}))
            .order_by(Contact.id)
        )
        if is_postgresql(self.session.get_bind()):  # type: ignore[arg-type]
            query = query.with_for_update(read=True, of=Contact)
        return {
            enrollment.id: Facts(contact, enrollment, paused is not None)
            for contact, enrollment, paused in self.session.execute(query)
        }

    def retry_later(
        self, delivery_id: int, *, now: datetime, lease_until: datetime, attempts: int, error: str
    ) -> None:
        """See `Guard.retry_later`."""
        moves.retry_later(
            self.session,
            delivery_id,
            now=now,
            lease_until=lease_until,
            attempts=attempts,
            error=error,
        )

    def await_event(self, delivery_id: int, *, now: datetime, wait: float, error: str) -> None:
        """See `Guard.await_event`."""
        moves.await_event(self.session, delivery_id, now=now, wait=wait, error=error)

    def record(self, ended: Sequence[Ended], *, now: datetime, queue_lease: float) -> Recorded:
        """See `Guard.record`."""
        return record_outcomes(self.session, ended, now=now, queue_lease=queue_lease)


class SqlSendStore:
    """The sender's store on a database."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def claim(
        self, delivery_ids: Sequence[int], *, now: datetime, send_lease: float
    ) -> list[Delivery]:
        """See `SendStore.claim`."""
        with self.sessions() as session, session.begin():
            return moves.claim_to_send(session, delivery_ids, now=now, send_lease=send_lease)

    @contextmanager
    def guard(self) -> Iterator[SqlGuard]:
        """See `SendStore.guard`."""
        with self.sessions() as session, session.begin():
            yield SqlGuard(session)
