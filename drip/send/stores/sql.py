"""The sender's store on the database: the statements of `drip.deliveries`."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, any_, bindparam, func, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import InstrumentedAttribute, Session, sessionmaker

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
from drip.models.base import UTCDateTime
from drip.send.decisions import Facts
from drip.send.stores.base import FactNeeds


class SqlGuard:
    """The guard transaction on a session."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.postgresql = is_postgresql(session.get_bind())  # type: ignore[arg-type]

    def facts(
        self, claimed: Sequence[Delivery], needs: FactNeeds = FactNeeds()
    ) -> dict[int, Facts]:
        """One round trip for the batch: contacts locked for share in id order (PostgreSQL),
        their enrollments, and whether each sequence is paused; then one more per fact
        `needs` asks for. The events are read after the lock is held, so an event
        committed before it (a goal's 202) is seen, and one committed after waits."""
        statements = _fact_statements(self.postgresql)
        enrollment_ids = sorted({d.enrollment_id for d in claimed})
        found = list(self.session.execute(statements.facts, {"ids": enrollment_ids}))
        contact_ids = sorted({contact.id for contact, _, _ in found})
        events: dict[int, list[tuple[str, datetime]]] = defaultdict(list)
        downloads: dict[int, set[str]] = defaultdict(set)
        recent: dict[int, list[datetime]] = defaultdict(list)
        if contact_ids and needs.events:
            for contact_id, name, occurred_at in self.session.execute(
                statements.events, {"ids": contact_ids}
            ):
                if contact_id is not None:
                    events[contact_id].append((name, occurred_at))
        if contact_ids and needs.downloads:
            for contact_id, sequence_id in self.session.execute(
                statements.downloads, {"ids": contact_ids}
            ):
                downloads[contact_id].add(sequence_id)
        if contact_ids and needs.sent_since is not None:
            for contact_id, sent_at in self.session.execute(
                statements.sent_since, {"ids": contact_ids, "since": needs.sent_since}
            ):
                if sent_at is not None:
                    recent[contact_id].append(sent_at)
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


class _FactStatements:
    """The guard's reads, built once per dialect: the ids travel as one array parameter on
    PostgreSQL (the statement's text is the same for any batch, and nothing is expanded per
    id), as an expanding IN elsewhere."""

    def __init__(self, postgresql: bool) -> None:
        def among(column: InstrumentedAttribute[int] | InstrumentedAttribute[int | None]) -> Any:
            if postgresql:
                return column == any_(bindparam("ids", type_=ARRAY(BigInteger())))
            return column.in_(bindparam("ids", expanding=True))

        facts = (
            select(Contact, Enrollment, SequenceState.sequence_id)
            .join(Enrollment, Enrollment.contact_id == Contact.id)
            .outerjoin(SequenceState, SequenceState.sequence_id == Enrollment.sequence_id)
            .where(among(Enrollment.id))
            .order_by(Contact.id)
        )
        # Each contact locked for share, in id order, until the guard transaction ends.
        self.facts = facts.with_for_update(read=True, of=Contact) if postgresql else facts
        self.events = select(
            ContactEvent.contact_id, ContactEvent.name, ContactEvent.occurred_at
        ).where(among(ContactEvent.contact_id))
        self.downloads = (
            select(Download.contact_id, Download.sequence_id)
            .where(among(Download.contact_id))
            .distinct()
        )
        since: ColumnElement[datetime] = bindparam("since", type_=UTCDateTime())
        self.sent_since = select(Delivery.contact_id, Delivery.sent_at).where(
            among(Delivery.contact_id),
            Delivery.status == DeliveryStatus.SENT,
            Delivery.sent_at > since,
        )


@cache
def _fact_statements(postgresql: bool) -> _FactStatements:
    return _FactStatements(postgresql)


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
