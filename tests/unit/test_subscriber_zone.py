"""Send windows open in the subscriber's own zone when they gave one, else the sequence's.

SQLite, the memory transport and a fixed clock; dates checked by hand in the comments.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from drip.config import AmbiguousPolicy
from drip.db import create_db_engine, session_factory, transaction
from drip.dispatch.scheduler import Scheduler, SchedulerPolicy
from drip.migrate import upgrade_database
from drip.models import Delivery, DeliveryStatus
from drip.send.sender import DeliverySender, Outcome, SendPolicy
from drip.send.transports import MemoryTransport
from drip.sequences.catalog import SequenceCatalog
from drip.signup.request import SignupRequest
from drip.signup.service import enroll_contact
from drip.unsubscribe.links import Links
from drip.unsubscribe.tokens import TokenSigner

#: A Monday: 12:00 UTC is 21:00 in Tokyo (UTC+9) and 05:00 in Los Angeles (PDT, UTC-7).
START = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)

#: Every day from 09:00 to 10:00 local time; the sequence's own zone stays UTC.
WINDOW = 'send_window: {start: "09:00", end: "10:00"}\n'


@dataclass
class Clock:
    now: datetime = START

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Zoned:
    sessions: sessionmaker[Session]
    catalog: SequenceCatalog
    clock: Clock
    sender: DeliverySender

    def signup(self, email: str, timezone: str | None) -> None:
        with transaction(self.sessions) as session:
            enroll_contact(
                session,
                SignupRequest(email=email, timezone=timezone),
                catalog=self.catalog,
                default_sequence="quick",
                now=self.clock(),
                queue_lease=60,
            )

    def claim_due(self) -> list[int]:
        """One scheduler tick: the ids it claimed and would enqueue."""
        enqueued: list[int] = []
        Scheduler(
            sessions=self.sessions,
            catalog=self.catalog,
            enqueue=enqueued.extend,
            policy=SchedulerPolicy(
                batch_size=10,
                queue_lease=60,
                send_lease=120,
                ambiguous_policy=AmbiguousPolicy.RESEND,
            ),
            clock=self.clock,
        ).tick()
        return enqueued

    def rows(self) -> list[Delivery]:
        with self.sessions() as session:
            return list(session.scalars(select(Delivery).order_by(Delivery.id)))


@pytest.fixture
def zoned(tmp_path: Path, sequences_dir: Path) -> Iterator[Zoned]:
    quick = sequences_dir / "quick.yaml"
    quick.write_text(quick.read_text().replace("timezone: UTC\n", "timezone: UTC\n" + WINDOW))
    url = f"sqlite:///{tmp_path / 'unit.db'}"
    upgrade_database(url)
    engine = create_db_engine(url)
    sessions = session_factory(engine)
    catalog = SequenceCatalog.load(sequences_dir, postal_address="1 Example Street")
    clock = Clock()
    sender = DeliverySender(
        sessions=sessions,
        catalog=catalog,
        transport=MemoryTransport(),
        links=Links(signer=TokenSigner("k"), base_url="https://drip.test"),
        policy=SendPolicy(
            send_lease=120, max_attempts=3, min_backoff=1, max_backoff=60, queue_lease=60
        ),
        clock=clock,
    )
    yield Zoned(sessions, catalog, clock, sender)
    sender.close()
    engine.dispose()


def _utc(moment: datetime) -> datetime:
    """SQLite hands back naive UTC datetimes; compare them as aware ones."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("timezone", "due"),
    [
        # 21:00 Monday in Tokyo, past 10:00: Tuesday 09:00 JST = Tuesday 00:00 UTC
        ("Asia/Tokyo", datetime(2026, 6, 2, 0, 0, tzinfo=UTC)),
        # 05:00 Monday in Los Angeles, before 09:00: Monday 09:00 PDT = Monday 16:00 UTC
        ("America/Los_Angeles", datetime(2026, 6, 1, 16, 0, tzinfo=UTC)),
        # No zone given: the sequence's, UTC; 12:00 is past 10:00, so Tuesday 09:00 UTC
        (None, datetime(2026, 6, 2, 9, 0, tzinfo=UTC)),
    ],
)
def test_step_one_waits_for_the_window_in_the_zone_the_subscriber_gave(
    zoned: Zoned, timezone: str | None, due: datetime
) -> None:
    zoned.signup("a@example.com", timezone)
    (first,) = zoned.rows()
    assert (first.step_id, first.status) == ("welcome", DeliveryStatus.SCHEDULED)
    assert _utc(first.due_at) == due


def test_the_next_step_is_planned_in_the_subscribers_zone_too(zoned: Zoned) -> None:
    # Given a subscriber in Tokyo whose email 1 goes at Tuesday 00:00 UTC (09:00 JST)
    zoned.signup("a@example.com", "Asia/Tokyo")
    zoned.clock.now = datetime(2026, 6, 2, 0, 0, tzinfo=UTC) - timedelta(seconds=1)
    assert zoned.claim_due() == []
    zoned.clock.now += timedelta(seconds=1)
    (first,) = zoned.claim_due()
    assert zoned.sender.send(first).outcome is Outcome.SENT
    # Then step 2, one second later, is 09:00:01 JST: inside Tokyo's window, so kept as is
    # (in the sequence's zone it would wait for 09:00 UTC)
    second = zoned.rows()[1]
    assert second.step_id == "second"
    assert _utc(second.due_at) == datetime(2026, 6, 2, 0, 0, tzinfo=UTC) + timedelta(seconds=1)
