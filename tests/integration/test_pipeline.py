"""A signup becomes emails on schedule: real PostgreSQL, Redis, Dramatiq and a fake SendGrid."""

from __future__ import annotations

import itertools
import time
from datetime import timedelta

import dramatiq
import pytest
from sqlalchemy import select, update

from drip.db import transaction, utcnow
from drip.models import Contact, DeliveryStatus, Enrollment, EnrollmentStatus
from drip.runtime import Runtime
from drip.send.actor import SEND_QUEUE
from drip.signup.request import SignupRequest
from drip.signup.service import enroll_contact
from drip.testing.fake_sendgrid import FakeSendGrid, Scripted
from tests.conftest import wait_for
from tests.integration.conftest import drain
from tests.integration.helpers import api_client, deliveries, running_scheduler


def enroll_without_sending(runtime: Runtime, email: str) -> int:
    """Enroll a contact; step 1 is left queued, as a signup leaves it before its enqueue."""
    with transaction(runtime.sessions) as session:
        result = enroll_contact(
            session,
            SignupRequest(email=email),
            catalog=runtime.catalog,
            default_sequence="quick",
            now=utcnow(),
            queue_lease=30,
        )
    assert result.delivery_to_enqueue is not None
    return result.delivery_to_enqueue


def test_a_signup_receives_three_emails_in_order_with_the_required_headers(
    runtime: Runtime, worker: dramatiq.Worker, fake_sendgrid: FakeSendGrid
) -> None:
    # Given a visitor signs up for a three-step sequence with one-second delays
    response = api_client(runtime).post(
        "/signups", json={"email": "Ann@Example.COM", "first_name": "Ann"}
    )
    assert response.status_code == 202

    # When the scheduler and a worker run
    with running_scheduler(runtime):
        wait_for(lambda: len(fake_sendgrid.accepted) >= 3, timeout=20, what="three emails")
        drain(runtime, worker)

    # Then exactly three emails went out, in order, each at least a second after the previous
    accepted = fake_sendgrid.accepted
    assert [a.payload["custom_args"]["step"] for a in accepted] == ["welcome", "second", "third"]
    assert all(b.at - a.at >= 0.95 for a, b in itertools.pairwise(accepted))
    first = accepted[0].payload
    assert first["personalizations"][0]["to"] == [{"email": "ann@example.com", "name": "Ann"}]
    assert first["subject"] == "Welcome, Ann"
    assert first["from"] == {"email": "hello@example.com", "name": "Test Sender"}
    assert first["reply_to"] == {"email": "reply@example.com"}
    assert [c["type"] for c in first["content"]] == ["text/plain", "text/html"]
    assert first["headers"]["List-Unsubscribe"].startswith("<https://drip.test/unsubscribe/")
    assert first["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    # custom_args carry ids only, as strings, never the address
    assert set(first["custom_args"]) == {"delivery_id", "sequence", "step"}
    assert all(isinstance(v, str) and "@" not in v for v in first["custom_args"].values())
    html = first["content"][1]["value"]
    assert 'style="color: #333333;"' in html  # CSS inlined
    assert "Unsubscribe" in first["content"][0]["value"]  # the text part has the footer too

    # And the database agrees: three sent rows with the provider's ids, the enrollment completed
    rows = deliveries(runtime)
    assert [(r.step_id, r.status) for r in rows] == [
        ("welcome", DeliveryStatus.SENT),
        ("second", DeliveryStatus.SENT),
        ("third", DeliveryStatus.SENT),
    ]
    assert {r.provider_message_id for r in rows} == {a.message_id for a in accepted}
    assert all(r.sequence_version for r in rows)
    with runtime.sessions() as session:
        assert session.scalars(select(Enrollment.status)).one() is EnrollmentStatus.COMPLETED


def test_one_click_unsubscribe_after_the_first_email_stops_the_rest(
    runtime: Runtime, worker: dramatiq.Worker, fake_sendgrid: FakeSendGrid
) -> None:
    client = api_client(runtime)
    client.post("/signups", data={"email": "bob@example.com"})
    with running_scheduler(runtime):
        wait_for(lambda: fake_sendgrid.accepted, what="the first email")
        unsubscribe_url = (
            fake_sendgrid.accepted[0].payload["headers"]["List-Unsubscribe"].strip("<>")
        )

        # When the subscriber uses the one-click header (RFC 8058)
        response = client.post(unsubscribe_url, data={"List-Unsubscribe": "One-Click"})

    # Then the answer is a plain 200, no redirect and no cookie
    assert response.status_code == 200
    assert "set-cookie" not in response.headers
    assert "unsubscribed" in response.text
    # And even a scheduler an hour later sends nothing more
    later = runtime.scheduler()
    later.clock = lambda: utcnow() + timedelta(hours=1)
    later.tick()
    drain(runtime, worker)
    assert len(fake_sendgrid.accepted) == 1
    statuses = {r.step_id: r.status for r in deliveries(runtime)}
    assert statuses == {"welcome": DeliveryStatus.SENT, "second": DeliveryStatus.CANCELLED}
    # And a second click is harmless
    assert client.post(unsubscribe_url, data={"List-Unsubscribe": "One-Click"}).status_code == 200


def test_a_duplicate_signup_sends_nothing_twice(
    runtime: Runtime, worker: dramatiq.Worker, fake_sendgrid: FakeSendGrid
) -> None:
    client = api_client(runtime)
    answers = [
        client.post("/signups", json={"email": e})
        for e in ("carol@example.com", "Carol@Example.com", "carol@example.com")
    ]
    # The answer never reveals that the address was known
    assert {(a.status_code, a.text) for a in answers} == {(202, answers[0].text)}
    with running_scheduler(runtime):
        wait_for(lambda: len(fake_sendgrid.accepted) >= 3, timeout=20, what="three emails")
        drain(runtime, worker)
    assert len(fake_sendgrid.accepted) == 3
    with runtime.sessions() as session:
        assert session.scalars(select(Contact.email)).all() == ["carol@example.com"]
        assert len(session.scalars(select(Enrollment)).all()) == 1


def test_a_rate_limited_send_is_retried_and_sent_once(
    runtime: Runtime, worker: dramatiq.Worker, fake_sendgrid: FakeSendGrid
) -> None:
    # Given the provider answers the first attempt with 429 and a reset 0.3 s away
    reset = str(int(time.time()) + 1)
    fake_sendgrid.script([Scripted(429, {"X-RateLimit-Reset": reset})])
    delivery_id = enroll_without_sending(runtime, "dan@example.com")
    # When the delivery is sent
    runtime.enqueue([delivery_id])
    wait_for(lambda: fake_sendgrid.accepted_for(delivery_id), what="the retried email")
    drain(runtime, worker)
    # Then it was sent once, on the second attempt, not before the reset
    assert len(fake_sendgrid.accepted_for(delivery_id)) == 1
    assert len(fake_sendgrid.requests) == 2
    row = next(r for r in deliveries(runtime) if r.id == delivery_id)
    assert (row.status, row.attempts) == (DeliveryStatus.SENT, 2)


def test_a_refused_message_fails_its_row_with_the_providers_reason(
    runtime: Runtime, worker: dramatiq.Worker, fake_sendgrid: FakeSendGrid
) -> None:
    refusal = {
        "errors": [
            {
                "message": "The from address does not match a verified Sender Identity.",
                "field": "from",
            }
        ]
    }
    fake_sendgrid.script([Scripted(400, body=refusal)])
    delivery_id = enroll_without_sending(runtime, "erin@example.com")
    runtime.enqueue([delivery_id])
    drain(runtime, worker)
    rows = deliveries(runtime)
    assert [(r.id, r.status) for r in rows] == [(delivery_id, DeliveryStatus.FAILED)]
    assert "400: The from address does not match a verified Sender Identity. (field from)" in (
        rows[0].error or ""
    )
    assert rows[0].attempts == 1  # a refusal is not retried
    assert fake_sendgrid.accepted == []


def test_two_workers_racing_for_one_delivery_send_it_once(
    runtime: Runtime, worker: dramatiq.Worker, fake_sendgrid: FakeSendGrid
) -> None:
    # Given one delivery whose message was enqueued many times (redelivery, a second scheduler)
    delivery_id = enroll_without_sending(runtime, "fay@example.com")
    second = dramatiq.Worker(
        runtime.broker, worker_threads=4, worker_timeout=50, queues={SEND_QUEUE}
    )
    second.start()
    try:
        # When two workers with four threads each race for those messages
        runtime.enqueue([delivery_id] * 16)
        drain(runtime, worker)
        second.join()
    finally:
        second.stop()
    # Then the provider got it exactly once
    assert len(fake_sendgrid.accepted_for(delivery_id)) == 1


def test_a_template_error_fails_that_delivery_and_the_worker_goes_on(
    runtime: Runtime, worker: dramatiq.Worker, fake_sendgrid: FakeSendGrid
) -> None:
    # Given a contact whose data breaks the template (a divisor of zero) and one whose data is fine
    broken = enroll_without_sending(runtime, "gus@example.com")
    fine = enroll_without_sending(runtime, "hal@example.com")
    with transaction(runtime.sessions) as session:
        session.execute(
            update(Contact)
            .where(Contact.email == "gus@example.com")
            .values(attributes={"divisor": 0})
        )
    runtime.enqueue([broken, fine])
    wait_for(lambda: fake_sendgrid.accepted_for(fine), what="the other contact's email")
    drain(runtime, worker)
    rows = {r.id: r for r in deliveries(runtime)}
    assert rows[broken].status is DeliveryStatus.FAILED
    assert "ZeroDivisionError" in (rows[broken].error or "")
    assert rows[fine].status is DeliveryStatus.SENT
    assert fake_sendgrid.accepted_for(broken) == []


def test_redis_down_at_signup_loses_nothing(
    runtime: Runtime, worker: dramatiq.Worker, fake_sendgrid: FakeSendGrid, settings: object
) -> None:
    from drip.runtime import build_runtime

    # Given an API whose Redis is unreachable
    down = build_runtime(settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"}))  # type: ignore[attr-defined]
    try:
        response = api_client(down).post("/signups", json={"email": "ivy@example.com"})
    finally:
        down.close()
    # Then the signup is still accepted and step 1 waits in the database
    assert response.status_code == 202
    assert [(r.step_id, r.status) for r in deliveries(runtime)] == [
        ("welcome", DeliveryStatus.SCHEDULED)
    ]
    # When Redis is reachable again, the scheduler sends it
    with running_scheduler(runtime):
        wait_for(lambda: fake_sendgrid.accepted, what="the email after Redis returned")
    assert fake_sendgrid.accepted[0].payload["custom_args"]["step"] == "welcome"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "not-an-address"}, "email"),
        ({"first_name": "No Email"}, "email"),
        ({"email": "a@example.com", "timezone": "Mars/Olympus"}, "timezone"),
        ({"email": "a@example.com", "sequence": "Bad Id!"}, "sequence"),
    ],
)
def test_a_malformed_signup_gets_422_naming_the_field(
    runtime: Runtime, body: dict[str, str], field: str
) -> None:
    response = api_client(runtime).post("/signups", json=body)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", field]
    assert deliveries(runtime) == []


def test_an_unknown_sequence_is_refused_by_name(runtime: Runtime) -> None:
    response = api_client(runtime).post(
        "/signups", json={"email": "a@example.com", "sequence": "nope"}
    )
    assert response.status_code == 422
    assert "'nope'" in response.json()["detail"][0]["msg"]
