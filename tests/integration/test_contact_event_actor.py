"""Stored contact events are applied by the `drip.apply_contact_events` actor on a real
worker, once each: a goal ends the run it names, a trigger starts a run whose first email
is enqueued after commit and sent; an event whose message was lost, or that a signup
attached, is applied by the scheduler's recovery job; an applied event is never applied
again."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import dramatiq
import pytest
from sqlalchemy import select

from drip.config import Settings
from drip.db import transaction, utcnow
from drip.dispatch.recovery import Recovery
from drip.events.contact_recovery import STALE_AFTER, apply_stale_contact_events
from drip.events.contact_store import store_contact_event
from drip.models import ContactEvent, Enrollment, EnrollmentStatus
from drip.runtime import Runtime
from drip.testing.fake_sendgrid import FakeSendGrid
from tests.conftest import wait_for
from tests.integration.api_keys import bearer, new_key
from tests.integration.helpers import api_client

ADDRESS = "buyer@example.com"

#: A sequence started by a purchase: one email, at once.
ONBOARDING = """\
id: onboarding
name: Client onboarding
from: {email: hello@example.com, name: Test Sender}
timezone: UTC
layout: layouts/base.html
trigger: {event: purchased}
steps:
  - id: hello
    delay: 0s
    subject: "Welcome aboard"
    template: quick/second.html
"""


@pytest.fixture
def sequences_dir(sequences_dir: Path) -> Path:
    """The test sequences, the quick one ending at a purchase, plus `ONBOARDING`."""
    quick = sequences_dir / "quick.yaml"
    quick.write_text(quick.read_text() + "exit: [{event: purchased}]\n")
    (sequences_dir / "onboarding.yaml").write_text(ONBOARDING)
    return sequences_dir


def run_of(runtime: Runtime, sequence_id: str) -> Enrollment | None:
    with runtime.sessions() as session:
        return session.scalars(
            select(Enrollment).where(Enrollment.sequence_id == sequence_id)
        ).one_or_none()


def the_event(runtime: Runtime) -> ContactEvent:
    with runtime.sessions() as session:
        return session.scalars(select(ContactEvent)).one()


def recover(runtime: Runtime, *, after: timedelta) -> dict[str, int]:
    """Run the scheduler's recovery job for contact events, `after` from now."""
    s = runtime.settings
    return apply_stale_contact_events(
        Recovery(
            sessions=runtime.sessions,
            catalog=runtime.catalog,
            enqueue=runtime.enqueue,
            now=utcnow() + after,
            batch_size=100,
            queue_lease=s.queue_lease,
            ambiguous_policy=s.ambiguous_policy,
            confirmation_ttl=s.confirmation_ttl,
        )
    )


def test_the_worker_applies_a_goal_and_a_trigger_and_sends_what_the_trigger_starts(
    runtime: Runtime, worker: dramatiq.Worker, fake_sendgrid: FakeSendGrid
) -> None:
    client = api_client(runtime)
    assert client.post("/signups", json={"email": ADDRESS}).status_code == 202
    wait_for(lambda: len(fake_sendgrid.accepted) == 1, what="the quick sequence's first email")
    body = {"id": "order-1", "email": ADDRESS, "name": "purchased"}
    headers = bearer(new_key(runtime, "events:write"))
    assert client.post("/v1/events", json=body, headers=headers).status_code == 202
    wait_for(lambda: the_event(runtime).applied_at, what="the event to be applied")
    quick, onboarding = run_of(runtime, "quick"), run_of(runtime, "onboarding")
    assert quick is not None
    assert onboarding is not None
    assert quick.status is EnrollmentStatus.CONVERTED
    # (its one email may already be sent, which completes the run: the worker is running)
    assert onboarding.status in {EnrollmentStatus.ACTIVE, EnrollmentStatus.COMPLETED}
    wait_for(lambda: len(fake_sendgrid.accepted) == 2, what="the onboarding email")
    assert fake_sendgrid.accepted[1].payload["subject"] == "Welcome aboard"
    wait_for(
        lambda: run_of(runtime, "onboarding").status is EnrollmentStatus.COMPLETED,  # type: ignore[union-attr]
        what="the onboarding run to complete",
    )
    # And the recovery job, later, applies nothing twice
    assert recover(runtime, after=STALE_AFTER * 2) == {"contact_events_applied": 0}


def test_an_event_whose_message_was_lost_is_applied_by_the_recovery_job(
    runtime: Runtime,
) -> None:
    with transaction(runtime.sessions) as session:
        now = utcnow()
        store_contact_event(
            session,
            client_id="order-2",
            email=ADDRESS,
            name="purchased",
            properties={},
            occurred_at=now,
            now=now,
        )
    # Unknown address: nothing to apply to yet, so recovery leaves it
    assert recover(runtime, after=STALE_AFTER * 2) == {"contact_events_applied": 0}
    # The address signs up (to another sequence): the event is attached, then applied
    response = api_client(runtime).post("/signups", json={"email": ADDRESS, "sequence": "quick"})
    assert response.status_code == 202
    assert recover(runtime, after=timedelta(0)) == {"contact_events_applied": 0}  # not stale yet
    counts = recover(runtime, after=STALE_AFTER * 2)
    assert counts == {"contact_events_applied": 1, "contact_events_failed": 0}
    assert the_event(runtime).applied_at is not None
    onboarding = run_of(runtime, "onboarding")
    assert onboarding is not None
    assert onboarding.status is EnrollmentStatus.ACTIVE


def test_an_applied_event_is_not_applied_again(runtime: Runtime, settings: Settings) -> None:
    api_client(runtime).post("/signups", json={"email": ADDRESS, "sequence": "quick"})
    headers = bearer(new_key(runtime, "events:write"))
    body = {"id": "order-3", "email": ADDRESS, "name": "purchased"}
    api_client(runtime).post("/v1/events", json=body, headers=headers)
    first = recover(runtime, after=STALE_AFTER * 2)
    applied_at = the_event(runtime).applied_at
    again = recover(runtime, after=STALE_AFTER * 3)
    assert (first["contact_events_applied"], again["contact_events_applied"]) == (1, 0)
    assert the_event(runtime).applied_at == applied_at


def test_an_enrolment_after_the_goal_answers_converted(runtime: Runtime) -> None:
    client, headers = api_client(runtime), bearer(new_key(runtime))
    body = {"id": "crm-1", "email": ADDRESS, "sequence": "quick"}
    assert client.post("/v1/enrollments", json=body, headers=headers).status_code == 201
    event = {"id": "order-4", "email": ADDRESS, "name": "purchased"}
    assert client.post("/v1/events", json=event, headers=headers).status_code == 202
    recover(runtime, after=STALE_AFTER * 2)
    again = client.post("/v1/enrollments", json={**body, "id": "crm-2"}, headers=headers)
    assert (again.status_code, again.json()["state"]) == (200, "converted")


def test_an_event_is_accepted_when_redis_refuses_and_applied_by_recovery(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    api_client(runtime).post("/signups", json={"email": ADDRESS, "sequence": "quick"})

    def refuse(*_: object, **__: object) -> None:
        raise ConnectionError("Redis is down")

    # Given Redis refusing every message
    monkeypatch.setattr(runtime.broker, "enqueue", refuse)
    headers = bearer(new_key(runtime, "events:write"))
    body = {"id": "order-5", "email": ADDRESS, "name": "purchased"}
    # Then the event is still accepted, stored and later applied by the scheduler's recovery
    assert api_client(runtime).post("/v1/events", json=body, headers=headers).status_code == 202
    assert the_event(runtime).applied_at is None
    assert recover(runtime, after=STALE_AFTER * 2)["contact_events_applied"] == 1
    quick = run_of(runtime, "quick")
    assert quick is not None
    assert quick.status is EnrollmentStatus.CONVERTED


def test_an_enrolment_hands_the_events_it_attached_to_the_worker(
    runtime: Runtime, worker: dramatiq.Worker
) -> None:
    client, headers = api_client(runtime), bearer(new_key(runtime))
    # Given a purchase by an address drip does not know yet
    event = {"id": "order-6", "email": ADDRESS, "name": "purchased"}
    assert client.post("/v1/events", json=event, headers=headers).status_code == 202
    # When a server enrols the address
    body = {"id": "crm-6", "email": ADDRESS, "sequence": "quick"}
    assert client.post("/v1/enrollments", json=body, headers=headers).status_code == 201
    # Then the worker applies the purchase at once (no recovery job runs here): its trigger
    # starts the onboarding run; the quick run began after the purchase, so it goes on
    wait_for(lambda: the_event(runtime).applied_at, what="the attached event to be applied")
    onboarding, quick = run_of(runtime, "onboarding"), run_of(runtime, "quick")
    assert onboarding is not None
    assert onboarding.status is EnrollmentStatus.ACTIVE
    assert quick is not None
    assert quick.status is EnrollmentStatus.ACTIVE
