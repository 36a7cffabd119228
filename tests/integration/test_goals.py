"""Goals end a series with the guarantee of an unsubscribe; triggers and re-entry start one.

Real PostgreSQL, Redis, worker and scheduler; the events come through `POST /v1/events`.
"""

from __future__ import annotations

import shutil
import time
from datetime import timedelta
from pathlib import Path

import dramatiq
import pytest
from sqlalchemy import select, update

from drip.config import Settings
from drip.db import transaction, utcnow
from drip.keys.store import create_key
from drip.models import (
    Contact,
    ContactEvent,
    ContactStatus,
    Delivery,
    DeliveryStatus,
    Enrollment,
    EnrollmentStatus,
)
from drip.reactions import apply_contact_event
from drip.runtime import Runtime, build_runtime, build_transport
from drip.send.actor import SEND_QUEUE
from drip.sequences.catalog import SequenceCatalog
from drip.testing.fake_sendgrid import FakeSendGrid
from drip.testing.threads import CheckedThread
from tests.conftest import TEST_SEQUENCES, wait_for
from tests.integration.helpers import api_client, deliveries, running_scheduler
from tests.integration.test_subscriber_trust import HeldTransport, _waiting_for_a_lock


@pytest.fixture
def sequences_dir(tmp_path: Path) -> Path:
    """The test sequence ending on `purchased`, and a two-step onboarding it triggers."""
    target = tmp_path / "sequences"
    shutil.copytree(TEST_SEQUENCES, target)
    quick = target / "quick.yaml"
    quick.write_text(
        quick.read_text().replace("steps:\n", "exit:\n  - {event: purchased}\nsteps:\n", 1)
    )
    onboarding = (
        quick.read_text()
        .replace("id: quick", "id: onboarding", 1)
        .replace("exit:\n  - {event: purchased}\n", "trigger: {event: purchased}\n")
    )
    (target / "onboarding.yaml").write_text(onboarding)
    return target


def _key(runtime: Runtime) -> str:
    with transaction(runtime.sessions) as session:
        _, new = create_key(session, "shop", "events:write", operator="test", now=utcnow())
    return new.token


def test_no_email_of_the_series_leaves_after_its_goal_is_acknowledged(
    settings: Settings, fake_sendgrid: FakeSendGrid
) -> None:
    # Given a subscriber whose email 1 is in flight, and a worker that sends but does not
    # apply events (so only the send-time check can stop what follows)
    held = HeldTransport(build_transport(settings))
    runtime = build_runtime(settings, transport=held)
    worker = dramatiq.Worker(runtime.broker, worker_threads=2, queues={SEND_QUEUE})
    worker.start()
    acknowledged: list[float] = []
    try:
        client = api_client(runtime)
        assert client.post("/signups", json={"email": "kim@example.com"}).status_code == 202
        wait_for(held.holding.is_set, what="email 1 in flight")
        key = _key(runtime)

        # When the shop reports a purchase while it is in flight
        def purchase() -> None:
            response = client.post(
                "/v1/events",
                json={"email": "kim@example.com", "name": "purchased", "id": "order-1"},
                headers={"Authorization": f"Bearer {key}"},
            )
            assert response.status_code == 202, response.text
            acknowledged.append(time.monotonic())

        buying = CheckedThread(purchase, name="purchase")
        buying.start()
        wait_for(lambda: acknowledged or _waiting_for_a_lock(runtime), what="the event to wait")
        held.release()
        buying.join(timeout=20)
        # And the scheduler and worker run past the time every later step was due
        with running_scheduler(runtime) as ticking:
            ticking.wait_past_every_due_row(runtime)
            runtime.broker.join(SEND_QUEUE, timeout=20_000)
            worker.join()
    finally:
        held.release()
        worker.stop()
        runtime.close()
    # Then email 1 went before the answer, and nothing of the series after it
    (acked,) = acknowledged
    sent = [
        (a.payload["custom_args"]["sequence"], a.payload["custom_args"]["step"], a.at)
        for a in fake_sendgrid.accepted
    ]
    assert [(seq, step) for seq, step, _ in sent if seq == "quick"] == [("quick", "welcome")]
    assert [step for seq, step, at in sent if seq == "quick" and at > acked] == []
    rows = {r.step_id: r for r in deliveries(runtime) if r.sequence_id == "quick"}
    assert rows["second"].status is DeliveryStatus.CANCELLED
    assert rows["second"].error == "goal reached: purchased"


def test_an_applied_goal_converts_the_run_and_its_trigger_starts_another(
    runtime: Runtime, worker: dramatiq.Worker, fake_sendgrid: FakeSendGrid
) -> None:
    # Given a subscriber of the series
    client = api_client(runtime)
    assert client.post("/signups", json={"email": "lee@example.com"}).status_code == 202
    wait_for(lambda: len(fake_sendgrid.accepted) == 1, what="email 1")
    key = _key(runtime)
    # When the shop reports a purchase (twice: the same id is one event)
    for _ in range(2):
        response = client.post(
            "/v1/events",
            json={"email": "lee@example.com", "name": "purchased", "id": "order-7"},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert response.status_code == 202

    # Then the series ends as converted and the onboarding starts, once
    def settled() -> bool:
        with runtime.sessions() as session:
            runs = {e.sequence_id: e.status for e in session.scalars(select(Enrollment))}
        return runs == {
            "quick": EnrollmentStatus.CONVERTED,
            "onboarding": EnrollmentStatus.ACTIVE,
        }

    wait_for(settled, what="the goal and the trigger applied")
    wait_for(
        lambda: any(
            a.payload["custom_args"]["sequence"] == "onboarding" for a in fake_sendgrid.accepted
        ),
        what="the onboarding's email 1",
    )
    with runtime.sessions() as session:
        assert session.scalar(select(ContactEvent.applied_at)) is not None
    steps = [(r.sequence_id, r.step_id) for r in deliveries(runtime)]
    assert steps.count(("onboarding", "welcome")) == 1


@pytest.mark.parametrize(
    ("reentry", "runs"),
    [("never", 1), ("always", 2), ("{after: 1d}", 1)],
)
def test_a_trigger_for_a_finished_run_follows_the_reentry_policy(
    runtime: Runtime, sequences_dir: Path, reentry: str, runs: int
) -> None:
    # Given a contact whose onboarding run finished
    path = sequences_dir / "onboarding.yaml"
    path.write_text(path.read_text().replace("steps:\n", f"reentry: {reentry}\nsteps:\n", 1))
    catalog = SequenceCatalog.load(sequences_dir, postal_address="1 Example Street")
    now = utcnow()
    with transaction(runtime.sessions) as session:
        contact = Contact(public_id="p1", email="r@example.com", email_hash="h", attributes={})
        session.add(contact)
        session.flush()
        first = ContactEvent(
            client_id="e1", email_hash="h", contact_id=contact.id, name="purchased", occurred_at=now
        )
        session.add(first)
        session.flush()
        apply_contact_event(session, first, catalog=catalog, now=now, queue_lease=60)
        enrollment = session.scalars(
            select(Enrollment).where(Enrollment.sequence_id == "onboarding")
        ).one()
        # an open run is never restarted
        again = ContactEvent(
            client_id="e2", email_hash="h", contact_id=contact.id, name="purchased", occurred_at=now
        )
        session.add(again)
        session.flush()
        apply_contact_event(session, again, catalog=catalog, now=now, queue_lease=60)
        assert enrollment.run == 0
        enrollment.status = EnrollmentStatus.COMPLETED
    # When another purchase arrives an hour later
    later = now + timedelta(hours=1)
    with transaction(runtime.sessions) as session:
        third = ContactEvent(
            client_id="e3",
            email_hash="h",
            contact_id=contact.id,
            name="purchased",
            occurred_at=later,
        )
        session.add(third)
        session.flush()
        apply_contact_event(session, third, catalog=catalog, now=later, queue_lease=60)
    # Then the policy decides whether a second run starts, with its own step 1
    with runtime.sessions() as session:
        enrollment = session.scalars(
            select(Enrollment).where(Enrollment.sequence_id == "onboarding")
        ).one()
        assert enrollment.run + 1 == runs
        welcomes = [r for r in deliveries(runtime) if r.sequence_id == "onboarding"]
        assert len(welcomes) == runs
        assert [r.run for r in welcomes] == list(range(runs))


def test_a_second_run_goes_through_its_own_steps(
    runtime: Runtime, sequences_dir: Path, fake_sendgrid: FakeSendGrid
) -> None:
    # Given an onboarding run that finished, and a purchase that starts another
    path = sequences_dir / "onboarding.yaml"
    path.write_text(path.read_text().replace("steps:\n", "reentry: always\nsteps:\n", 1))
    catalog = SequenceCatalog.load(sequences_dir, postal_address="1 Example Street")
    runtime.sender.catalog = catalog
    now = utcnow()
    with transaction(runtime.sessions) as session:
        contact = Contact(public_id="p2", email="s@example.com", email_hash="h2", attributes={})
        session.add(contact)
        session.flush()
        for n in (1, 2):
            event = ContactEvent(
                client_id=f"s{n}",
                email_hash="h2",
                contact_id=contact.id,
                name="purchased",
                occurred_at=now,
            )
            session.add(event)
            session.flush()
            apply_contact_event(session, event, catalog=catalog, now=now, queue_lease=60)
            if n == 1:
                session.execute(update(Delivery).values(status=DeliveryStatus.SENT, sent_at=now))
                # the first run went all the way through
                (enrollment,) = session.scalars(select(Enrollment)).all()
                for step in ("second", "third"):
                    session.add(
                        Delivery(
                            enrollment_id=enrollment.id,
                            contact_id=contact.id,
                            sequence_id="onboarding",
                            step_id=step,
                            status=DeliveryStatus.SENT,
                            due_at=now,
                            sent_at=now,
                        )
                    )
                session.execute(update(Enrollment).values(status=EnrollmentStatus.COMPLETED))
    # When the second run's step 1 is sent
    (first,) = [r for r in deliveries(runtime) if r.run == 1]
    result = runtime.sender.send(first.id)
    # Then its step 2 is planned in the same run: the first run's rows do not count
    assert result.outcome.value == "sent"
    assert [(r.run, r.step_id, r.status) for r in deliveries(runtime)] == [
        (0, "welcome", DeliveryStatus.SENT),
        (0, "second", DeliveryStatus.SENT),
        (0, "third", DeliveryStatus.SENT),
        (1, "welcome", DeliveryStatus.SENT),
        (1, "second", DeliveryStatus.SCHEDULED),
    ]


@pytest.mark.parametrize("status", [ContactStatus.UNSUBSCRIBED, ContactStatus.SUPPRESSED])
def test_a_trigger_never_reaches_a_contact_who_stopped(
    runtime: Runtime, sequences_dir: Path, status: ContactStatus
) -> None:
    catalog = SequenceCatalog.load(sequences_dir, postal_address="1 Example Street")
    now = utcnow()
    with transaction(runtime.sessions) as session:
        contact = Contact(
            public_id="p3", email="t@example.com", email_hash="h3", attributes={}, status=status
        )
        session.add(contact)
        session.flush()
        event = ContactEvent(
            client_id="t1",
            email_hash="h3",
            contact_id=contact.id,
            name="purchased",
            occurred_at=now,
        )
        session.add(event)
        session.flush()
        assert apply_contact_event(session, event, catalog=catalog, now=now, queue_lease=60) == []
    assert deliveries(runtime) == []
    with runtime.sessions() as session:
        assert session.scalars(select(Enrollment)).all() == []
