"""The batch path on the in-memory twin and Dramatiq's StubBroker: no database, no Redis.

The same tests' guarantees hold on PostgreSQL (tests/integration); here they run in
milliseconds, so every outcome of a batch is covered one by one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker

from drip.errors import AmbiguousSendError, PermanentSendError, TransientSendError
from drip.models import (
    Contact,
    ContactStatus,
    Delivery,
    DeliveryStatus,
    Enrollment,
    EnrollmentStatus,
)
from drip.send import actor as send_actor
from drip.send.message import OutgoingEmail
from drip.send.sender import DeliverySender, Outcome, SendPolicy
from drip.send.stores import MemorySendStore
from drip.send.transports import MemoryTransport
from drip.sequences.catalog import SequenceCatalog
from drip.unsubscribe.links import Links
from drip.unsubscribe.tokens import TokenSigner
from tests.conftest import TEST_SEQUENCES

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
POLICY = SendPolicy(
    send_lease=120,
    max_attempts=3,
    min_backoff=1,
    max_backoff=60,
    queue_lease=60,
    ambiguous_wait=900,
)


@dataclass
class ScriptedTransport(MemoryTransport):
    """Answers each address as scripted: an exception to raise, else accepted."""

    script: dict[str, Exception] = field(default_factory=dict)
    groups: list[int] = field(default_factory=list)
    during: Callable[[OutgoingEmail], None] | None = None

    def __post_init__(self) -> None:
        super().__init__()

    def send(self, email: OutgoingEmail) -> str:
        if self.during is not None:
            self.during(email)
        failure = self.script.get(email.to_email)
        if failure is not None:
            raise failure
        return super().send(email)

    def send_group(self, emails: Sequence[OutgoingEmail]) -> str:
        self.groups.append(len(emails))
        for email in emails:
            super().send(email)
        return f"group-{len(self.groups)}"


@dataclass
class Twin:
    store: MemorySendStore
    transport: ScriptedTransport
    sender: DeliverySender
    catalog: SequenceCatalog

    def person(self, email: str, *, step: str = "welcome", **contact: object) -> Delivery:
        """A contact enrolled in `quick` with one queued row of `step`."""
        n = len(self.store.contacts) + 1
        self.store.contacts[n] = Contact(
            id=n,
            email=email,
            public_id=f"p{n}",
            status=contact.get("status", ContactStatus.ACTIVE),
            attributes={},
        )
        self.store.enrollments[n] = Enrollment(
            id=n,
            contact_id=n,
            sequence_id="quick",
            status=EnrollmentStatus.ACTIVE,
            enrolled_at=NOW,
        )
        return self.store.add(
            Delivery(
                enrollment_id=n,
                contact_id=n,
                sequence_id="quick",
                step_id=step,
                status=DeliveryStatus.QUEUED,
                due_at=NOW,
                lease_until=NOW + timedelta(seconds=60),
            )
        )

    def rows(self, enrollment_id: int) -> list[tuple[str, DeliveryStatus]]:
        return [
            (d.step_id, d.status)
            for d in self.store.deliveries.values()
            if d.enrollment_id == enrollment_id
        ]


@pytest.fixture
def twin() -> Twin:
    catalog = SequenceCatalog.load(TEST_SEQUENCES, postal_address="1 Example Street")
    store, transport = MemorySendStore(), ScriptedTransport()
    sender = DeliverySender(
        store=store,
        catalog=catalog,
        transport=transport,
        links=Links(signer=TokenSigner("k"), base_url="https://drip.test"),
        policy=POLICY,
        clock=lambda: NOW,
        concurrency=1,
    )
    return Twin(store, transport, sender, catalog)


def test_one_batch_ends_each_row_on_its_own(twin: Twin) -> None:
    # Given a batch with every kind of row
    sent = twin.person("sent@example.com")
    gone = twin.person("gone@example.com", status=ContactStatus.UNSUBSCRIBED)
    refused = twin.person("refused@example.com")
    flaky = twin.person("flaky@example.com")
    lost = twin.person("lost@example.com")
    removed = twin.person("removed@example.com", step="no-such-step")
    twin.transport.script = {
        "refused@example.com": PermanentSendError("400 bad address"),
        "flaky@example.com": TransientSendError("503"),
        "lost@example.com": AmbiguousSendError("read timeout"),
    }
    ids = [sent.id, gone.id, refused.id, flaky.id, lost.id, removed.id, sent.id, 999]
    # When the sender takes it
    results = twin.sender.send_batch(ids)
    # Then each row moved on its own condition
    assert {i: r.outcome for i, r in results.items()} == {
        sent.id: Outcome.SENT,
        gone.id: Outcome.CANCELLED,
        refused.id: Outcome.FAILED,
        flaky.id: Outcome.RETRY,
        lost.id: Outcome.AMBIGUOUS,
        removed.id: Outcome.CANCELLED,
        999: Outcome.NOT_MINE,
    }
    assert [e.to_email for e in twin.transport.sent] == ["sent@example.com"]
    assert (flaky.status, flaky.lease_until) == (
        DeliveryStatus.QUEUED,
        NOW + timedelta(seconds=results[flaky.id].retry_in or 0) + timedelta(seconds=60),
    )
    assert (lost.status, lost.lease_until) == (DeliveryStatus.SENDING, NOW + timedelta(seconds=900))
    assert gone.error == "contact unsubscribed"
    # And only the sent row and the removed step planned what follows
    assert twin.rows(sent.enrollment_id) == [
        ("welcome", DeliveryStatus.SENT),
        ("second", DeliveryStatus.SCHEDULED),
    ]
    assert twin.rows(removed.enrollment_id) == [
        ("no-such-step", DeliveryStatus.CANCELLED),
        ("welcome", DeliveryStatus.QUEUED),
    ]
    (planned,) = [
        d.id
        for d in twin.store.deliveries.values()
        if d.enrollment_id == removed.enrollment_id and d.step_id == "welcome"
    ]
    assert results[removed.id].next_delivery == planned  # due at once: enqueued by the actor


def test_a_second_call_for_the_same_rows_sends_nothing(twin: Twin) -> None:
    row = twin.person("a@example.com")
    assert twin.sender.send(row.id).outcome is Outcome.SENT
    assert twin.sender.send(row.id).outcome is Outcome.NOT_MINE
    assert len(twin.transport.sent) == 1


def test_a_paused_sequence_hands_its_rows_back_to_the_schedule(twin: Twin) -> None:
    row = twin.person("a@example.com")
    twin.store.paused.add("quick")
    assert twin.sender.send(row.id).outcome is Outcome.PAUSED
    assert row.status is DeliveryStatus.SCHEDULED
    assert twin.transport.sent == []


def test_emails_sharing_a_body_go_in_one_request(twin: Twin) -> None:
    rows = [twin.person(f"p{n}@example.com", step="second") for n in range(3)]
    results = twin.sender.send_batch([r.id for r in rows])
    assert {r.outcome for r in results.values()} == {Outcome.SENT}
    assert twin.transport.groups == [3]


def test_a_resend_plans_nothing(twin: Twin) -> None:
    row = twin.person("a@example.com")
    row.resend = True
    assert twin.sender.send(row.id).outcome is Outcome.SENT
    assert twin.rows(row.enrollment_id) == [("welcome", DeliveryStatus.SENT)]


def test_the_actors_send_a_batch_and_its_next_step_through_a_stub_broker(twin: Twin) -> None:
    # Given the actors on Dramatiq's stub broker, and a last-but-one step
    broker = StubBroker()
    broker.emit_after("process_boot")
    send_actor.declare_send_actor(broker, twin.sender)
    rows = [twin.person(f"p{n}@example.com", step="second") for n in range(2)]
    for row in rows:
        twin.store.deliveries[row.id].due_at = NOW
    # When the scheduler's message is processed
    send_actor.enqueue_sends(broker, [r.id for r in rows])
    worker = dramatiq.Worker(broker, worker_timeout=100)
    worker.start()
    try:
        broker.join(send_actor.SEND_QUEUE, timeout=10_000)
        worker.join()
    finally:
        worker.stop()
    # Then both were sent, and step 3 (due one second later) waits for the scheduler
    assert sorted(e.to_email for e in twin.transport.sent) == ["p0@example.com", "p1@example.com"]
    assert twin.rows(rows[0].enrollment_id) == [
        ("second", DeliveryStatus.SENT),
        ("third", DeliveryStatus.SCHEDULED),
    ]


def test_a_row_taken_over_mid_call_records_and_plans_nothing(twin: Twin) -> None:
    # Given a send whose lease runs out while the provider call is in flight, and the
    # scheduler, settling it, takes the row over
    row = twin.person("slow@example.com")

    def taken_over(email: OutgoingEmail) -> None:
        row.status = DeliveryStatus.QUEUED

    twin.transport.during = taken_over
    # When the call then returns accepted
    result = twin.sender.send(row.id)
    # Then the worker's end is not recorded and nothing is planned after it
    assert (result.outcome, result.next_delivery) == (Outcome.SENT, None)
    assert twin.rows(row.enrollment_id) == [("welcome", DeliveryStatus.QUEUED)]
