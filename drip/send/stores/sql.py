"""The sender's store on the database: the statements of `drip.deliveries`."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from drip.db import is_postgresql
from drip.deliveries import moves
from drip.deliveries.outcomes import Ended, Recorded, record_outcomes
from drip.models import (
    Contact,
    ContactEvent,
    Delivery,
    DeliveryStatus,
    Download,
    Enrollment,
    ProviderEvent,
    SequenceState,
)
from drip.send.decisions import Facts
from drip.send.stores.base import FactNeeds


class SqlGuard:
    """The guard transaction on a session."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def facts(
        self, claimed: Sequence[Delivery], needs: FactNeeds = FactNeeds()
    ) -> dict[int, Facts]:
        """One round trip for the batch: contacts locked for share in id order (PostgreSQL),
        their enrollments, and whether each sequence is paused; then one more per fact
        `needs` asks for. The events are read after the lock is held, so an event
        committed before it (a goal's 202) is seen, and one committed after waits."""
        query = (
            select(Contact, Enrollment, SequenceState.sequence_id)
            .join(Enrollment, Enrollment.contact_id == Contact.id)
            .outerjoin(SequenceState, SequenceState.sequence_id == Enrollment.sequence_id)
            .where(Enrollment.id.in_({d.enrollment_id for d in claimed}))
            .order_by(Contact.id)
        )
        if is_postgresql(self.session.get_bind()):  # type: ignore[arg-type]
            query = query.with_for_update(read=True, of=Contact)
        found = list(self.session.execute(query))
        contact_ids = {contact.id for contact, _, _ in found}
        events = self._events(contact_ids) if needs.events and contact_ids else {}
        downloads = self._downloads(contact_ids) if needs.downloads and contact_ids else {}
        recent = (
            self._sent_since(contact_ids, needs.sent_since)
            if needs.sent_since is not None and contact_ids
            else {}
        )
        return {
            enrollment.id: Facts(
                contact,
                enrollment,
                paused is not None,
                tuple(events.get(contact.id, ())),
                frozenset(downloads.get(contact.id, ())),
                tuple(recent.get(contact.id, ())),
            )
            for contact, enrollment, paused in found
        }

    def _events(self, contact_ids: set[int]) -> dict[int, list[tuple[str, datetime]]]:
        found: dict[int, list[tuple[str, datetime]]] = defaultdict(list)
        rows = self.session.execute(
            select(ContactEvent.contact_id, ContactEvent.name, ContactEvent.occurred_at).where(
                ContactEvent.contact_id.in_(contact_ids)
            )
        )
        for contact_id, name, occurred_at in rows:
            if contact_id is not None:
                found[contact_id].append((name, occurred_at))
        return found

    def _downloads(self, contact_ids: set[int]) -> dict[int, set[str]]:
        found: dict[int, set[str]] = defaultdict(set)
        rows = self.session.execute(
            select(Download.contact_id, Download.sequence_id)
            .where(Download.contact_id.in_(contact_ids))
            .distinct()
        )
        for contact_id, sequence_id in rows:
            found[contact_id].add(sequence_id)
        return found

    def _sent_since(self, contact_ids: set[int], since: datetime) -> dict[int, list[datetime]]:
        found: dict[int, list[datetime]] = defaultdict(list)
        rows = self.session.execute(
            select(Delivery.contact_id, Delivery.sent_at).where(
                Delivery.contact_id.in_(contact_ids),
                Delivery.status == DeliveryStatus.SENT,
                Delivery.sent_at > since,
            )
        )
        for contact_id, sent_at in rows:
            if sent_at is not None:
                found[contact_id].append(sent_at)
        return found

    def reported_processed(self, delivery_ids: Sequence[int]) -> dict[int, datetime]:
        """See `Guard.reported_processed`."""
        rows = self.session.execute(
            select(ProviderEvent.delivery_id, func.min(ProviderEvent.occurred_at))
            .where(
                ProviderEvent.delivery_id.in_(list(delivery_ids)),
                ProviderEvent.event == "processed",
            )
            .group_by(ProviderEvent.delivery_id)
        )
        return {d: at for d, at in rows if d is not None and at is not None}

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
