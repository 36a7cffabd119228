"""A small world for unit tests of the state machine: SQLite, a memory transport that fails
on request, a fixed clock, the real sender and scheduler."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from drip.config import AmbiguousPolicy
from drip.db import create_db_engine, session_factory, transaction
from drip.dispatch.scheduler import Scheduler, SchedulerPolicy
from drip.migrate import upgrade_database
from drip.models import Delivery
from drip.send.message import OutgoingEmail
from drip.send.sender import DeliverySender, SendPolicy
from drip.send.transports import MemoryTransport
from drip.sequences.catalog import SequenceCatalog
from drip.signup.request import SignupRequest
from drip.signup.service import enroll_contact
from drip.unsubscribe.links import Links
from drip.unsubscribe.tokens import TokenSigner

START = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)

#: Deliberately different, so a wait that uses the wrong one shows.
QUEUE_LEASE, AMBIGUOUS_WAIT = 60.0, 900.0


@dataclass
class Clock:
    """A clock that moves only when told."""

    now: datetime = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class FlakyTransport(MemoryTransport):
    """The memory transport, raising the queued failures first."""

    failures: list[Exception] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__()

    def send(self, email: OutgoingEmail) -> str:
        if self.failures:
            raise self.failures.pop(0)
        return super().send(email)


@dataclass
class World:
    """The real sender and scheduler on SQLite, the clock and the transport in the test's hands."""

    sessions: sessionmaker[Session]
    catalog: SequenceCatalog
    transport: FlakyTransport
    clock: Clock
    sender: DeliverySender
    enqueued: list[int] = field(default_factory=list)

    def scheduler(self, policy: AmbiguousPolicy = AmbiguousPolicy.RESEND) -> Scheduler:
        """A fresh scheduler, so its first tick runs the recovery jobs."""
        return Scheduler(
            sessions=self.sessions,
            catalog=self.catalog,
            enqueue=self.enqueued.extend,
            policy=SchedulerPolicy(
                batch_size=10, queue_lease=QUEUE_LEASE, send_lease=120, ambiguous_policy=policy
            ),
            clock=self.clock,
        )

    def signup(self, email: str) -> int:
        """Sign `email` up to the test sequence; its step 1's id (queued)."""
        with transaction(self.sessions) as session:
            result = enroll_contact(
                session,
                SignupRequest(email=email),
                catalog=self.catalog,
                default_sequence="quick",
                now=self.clock(),
                queue_lease=QUEUE_LEASE,
            )
        assert result.delivery_to_enqueue is not None
        return result.delivery_to_enqueue

    def rows(self) -> list[Delivery]:
        """Every delivery, oldest first."""
        with self.sessions() as session:
            return list(session.scalars(select(Delivery).order_by(Delivery.id)))

    def row(self, delivery_id: int) -> Delivery:
        """One delivery."""
        with self.sessions() as session:
            return session.scalars(select(Delivery).where(Delivery.id == delivery_id)).one()


def build_world(
    tmp_path: Path, sequences_dir: Path, *, database_url: str | None = None, daily_cap: int = 0
) -> Iterator[World]:
    """A world of the test sequences (a fixture's body): on a fresh SQLite database, or on
    `database_url`, already migrated (PostgreSQL, for the SQL that differs by database); the
    sender capped at `daily_cap` emails a day (0: none)."""
    url = database_url or f"sqlite:///{tmp_path / 'unit.db'}"
    if database_url is None:
        upgrade_database(url)
    engine = create_db_engine(url)
    sessions = session_factory(engine)
    catalog = SequenceCatalog.load(sequences_dir, postal_address="1 Example Street")
    transport, clock = FlakyTransport(), Clock()
    sender = DeliverySender(
        sessions=sessions,
        catalog=catalog,
        transport=transport,
        links=Links(signer=TokenSigner("k"), base_url="https://drip.test"),
        policy=SendPolicy(
            send_lease=120,
            max_attempts=3,
            min_backoff=1,
            max_backoff=60,
            queue_lease=QUEUE_LEASE,
            ambiguous_wait=AMBIGUOUS_WAIT,
            daily_cap=daily_cap,
        ),
        clock=clock,
    )
    yield World(sessions, catalog, transport, clock, sender)
    sender.close()
    engine.dispose()
