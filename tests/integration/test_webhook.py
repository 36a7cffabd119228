"""The Signed Event Webhook: SendGrid's published vectors, our own key pair, hostile bodies."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import dramatiq
import pytest
from sqlalchemy import select

from drip.config import Settings
from drip.db import utcnow
from drip.models import Contact, ContactStatus, DeliveryStatus, ProviderEvent
from drip.runtime import Runtime, build_runtime
from drip.testing.fake_sendgrid import FakeSendGrid
from tests.conftest import sendgrid_schema_dir, wait_for
from tests.integration.conftest import WEBHOOK_KEYS, drain
from tests.integration.helpers import api_client, deliveries, running_scheduler


@pytest.fixture
def vectors() -> dict[str, str]:
    data: dict[str, str] = json.loads(
        (sendgrid_schema_dir() / "eventwebhook_vectors.json").read_text()
    )
    return data


@pytest.fixture
def vector_runtime(settings: Settings, vectors: dict[str, str]) -> Runtime:
    rt = build_runtime(
        settings.model_copy(update={"sendgrid_webhook_public_key": vectors["public_key"]})
    )
    # The vectors were signed long ago: check them with their own time as "now".
    assert rt.webhook_verifier is not None
    rt.webhook_verifier.clock = lambda: float(vectors["timestamp"])
    yield rt  # type: ignore[misc]
    rt.close()


def post_vector(runtime: Runtime, payload: str, signature: str, timestamp: str):  # type: ignore[no-untyped-def]
    return api_client(runtime).post(
        "/webhooks/sendgrid",
        content=payload.encode(),
        headers={
            "X-Twilio-Email-Event-Webhook-Signature": signature,
            "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
            "Content-Type": "application/json",
        },
    )


def test_the_published_vectors_verify_and_the_dropped_event_suppresses(
    vector_runtime: Runtime, vectors: dict[str, str]
) -> None:
    # Given a known contact hello@world.com
    client = api_client(vector_runtime)
    client.post("/signups", json={"email": "hello@world.com"})
    # When SendGrid posts the signed batch (raw bytes, trailing CRLF included)
    response = post_vector(
        vector_runtime, vectors["payload"], vectors["signature"], vectors["timestamp"]
    )
    assert response.status_code == 200
    assert response.json() == {"received": 1, "stored": 1}
    # Then the event, applied (here by the scheduler's fallback, as no worker runs), suppresses
    scheduler = vector_runtime.scheduler()
    scheduler.clock = lambda: utcnow() + timedelta(minutes=1)
    assert scheduler.tick().events_applied == 1
    with vector_runtime.sessions() as session:
        contact = session.scalars(select(Contact)).one()
    assert contact.status is ContactStatus.SUPPRESSED
    assert contact.status_reason == "dropped: Bounced Address"


@pytest.mark.parametrize("tamper", ["other_signature", "payload", "timestamp", "missing"])
def test_the_vectors_refuse_anything_altered(
    vector_runtime: Runtime, vectors: dict[str, str], tamper: str
) -> None:
    payload, signature, timestamp = vectors["payload"], vectors["signature"], vectors["timestamp"]
    if tamper == "other_signature":
        signature = vectors["other_signature"]
    elif tamper == "payload":
        payload = payload.replace("dropped", "delivered")
    elif tamper == "timestamp":
        timestamp = str(int(timestamp) + 1)
    elif tamper == "missing":
        signature = ""
    assert post_vector(vector_runtime, payload, signature, timestamp).status_code == 403
    with vector_runtime.sessions() as session:
        assert session.scalars(select(ProviderEvent)).all() == []


def test_another_key_does_not_verify_the_vectors(runtime: Runtime, vectors: dict[str, str]) -> None:
    response = post_vector(runtime, vectors["payload"], vectors["signature"], vectors["timestamp"])
    assert response.status_code == 403


def test_without_a_key_the_webhook_is_refused(settings: Settings, vectors: dict[str, str]) -> None:
    rt = build_runtime(settings.model_copy(update={"sendgrid_webhook_public_key": None}))
    try:
        response = post_vector(rt, vectors["payload"], vectors["signature"], vectors["timestamp"])
    finally:
        rt.close()
    assert response.status_code == 403
    assert "DRIP_SENDGRID_WEBHOOK_PUBLIC_KEY" in response.json()["detail"]


def signed_post(runtime: Runtime, events: list[dict[str, object]] | bytes):  # type: ignore[no-untyped-def]
    body = events if isinstance(events, bytes) else json.dumps(events).encode()
    return api_client(runtime).post(
        "/webhooks/sendgrid", content=body, headers=WEBHOOK_KEYS.headers(body)
    )


def test_a_bounce_suppresses_the_contact_and_cancels_the_rest_once_even_if_replayed(
    runtime: Runtime, worker: dramatiq.Worker, fake_sendgrid: FakeSendGrid
) -> None:
    # Given a subscriber who got email 1, with email 2 scheduled
    api_client(runtime).post("/signups", json={"email": "bea@example.com"})
    wait_for(lambda: fake_sendgrid.accepted, what="email 1")
    drain(runtime, worker)
    first = fake_sendgrid.accepted[0]
    batch = [
        {
            "email": "bea@example.com",
            "event": "processed",
            "sg_event_id": "p1",
            "timestamp": 1700000000,
            "delivery_id": first.delivery_id,
            "sg_message_id": first.message_id,
        },
        {
            "email": "bea@example.com",
            "event": "delivered",
            "sg_event_id": "d1",
            "timestamp": 1700000001,
            "delivery_id": first.delivery_id,
        },
        {
            "email": "bea@example.com",
            "event": "open",
            "sg_event_id": "o1",
            "timestamp": 1700000002,
            "delivery_id": first.delivery_id,
        },
        {
            "email": "bea@example.com",
            "event": "bounce",
            "type": "bounce",
            "reason": "550 5.1.1 no such user",
            "sg_event_id": "b1",
            "timestamp": 1700000003,
            "delivery_id": first.delivery_id,
        },
    ]
    # When SendGrid posts the batch, twice (a retry)
    assert signed_post(runtime, batch).json() == {"received": 4, "stored": 4}
    assert signed_post(runtime, batch).json() == {"received": 4, "stored": 0}
    drain(runtime, worker)
    # Then the contact is suppressed, email 2 cancelled, and each event recorded once
    with runtime.sessions() as session:
        contact = session.scalars(select(Contact)).one()
        events = session.scalars(select(ProviderEvent.event).order_by(ProviderEvent.id)).all()
        unapplied = session.scalars(
            select(ProviderEvent).where(ProviderEvent.processed_at.is_(None))
        ).all()
    assert (contact.status, contact.status_reason) == (
        ContactStatus.SUPPRESSED,
        "bounce: 550 5.1.1 no such user",
    )
    assert events == ["processed", "delivered", "open", "bounce"]
    assert unapplied == []
    assert [r.status for r in deliveries(runtime)] == [
        DeliveryStatus.SENT,
        DeliveryStatus.CANCELLED,
    ]
    # And a new signup for the bounced address sends nothing at all (not even once the
    # scheduler has passed every row's due time)
    api_client(runtime).post("/signups", json={"email": "bea@example.com"})
    with running_scheduler(runtime) as ticking:
        ticking.wait_past_every_due_row(runtime)
        drain(runtime, worker)
    assert len(fake_sendgrid.accepted) == 1


def test_an_unsubscribe_event_unsubscribes(
    runtime: Runtime, worker: dramatiq.Worker, fake_sendgrid: FakeSendGrid
) -> None:
    api_client(runtime).post("/signups", json={"email": "cal@example.com"})
    wait_for(lambda: fake_sendgrid.accepted, what="email 1")
    signed_post(
        runtime,
        [
            {
                "email": "cal@example.com",
                "event": "group_unsubscribe",
                "sg_event_id": "u1",
                "timestamp": 1700000000,
            }
        ],
    )
    drain(runtime, worker)
    with runtime.sessions() as session:
        assert session.scalars(select(Contact.status)).one() is ContactStatus.UNSUBSCRIBED


def test_events_stored_while_redis_was_down_are_applied_by_the_scheduler(
    settings: Settings, runtime: Runtime
) -> None:
    down = build_runtime(settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"}))
    try:
        api_client(runtime).post("/signups", json={"email": "dee@example.com"})
        response = signed_post(
            down, [{"email": "dee@example.com", "event": "spamreport", "sg_event_id": "s1"}]
        )
    finally:
        down.close()
    assert response.status_code == 200
    scheduler = runtime.scheduler()
    scheduler.clock = lambda: utcnow() + timedelta(minutes=1)
    assert scheduler.tick().events_applied == 1
    with runtime.sessions() as session:
        assert session.scalars(select(Contact.status)).one() is ContactStatus.SUPPRESSED


@pytest.mark.parametrize(
    ("body", "status"),
    [(b"not json", 400), (b'{"event": "open"}', 400), (b"[1, 2]", 400), (b"[]", 200)],
)
def test_malformed_signed_bodies_get_a_clear_4xx(
    runtime: Runtime, body: bytes, status: int
) -> None:
    assert signed_post(runtime, body).status_code == status


def test_an_oversized_body_gets_413_unread(settings: Settings) -> None:
    rt = build_runtime(settings.model_copy(update={"webhook_max_bytes": 1000}))
    try:
        body = json.dumps([{"event": "open", "sg_event_id": str(n)} for n in range(100)]).encode()
        assert signed_post(rt, body).status_code == 413
    finally:
        rt.close()


@pytest.mark.parametrize("stamp", ["0", "-400", "+400", "nan", "yesterday"])
def test_a_signed_body_with_a_stale_or_unreadable_timestamp_is_refused(
    runtime: Runtime, stamp: str
) -> None:
    # Given a body correctly signed by the configured key, at a time outside the window
    if stamp[0] in "+-":
        stamp = str(int(time.time() + int(stamp)))
    body = json.dumps([{"event": "open", "sg_event_id": "stale"}]).encode()
    headers = WEBHOOK_KEYS.headers(body, timestamp=stamp)
    # When it is posted
    response = api_client(runtime).post("/webhooks/sendgrid", content=body, headers=headers)
    # Then it is refused, and nothing is stored
    assert response.status_code == 403
    assert "timestamp" in response.json()["detail"]
    with runtime.sessions() as session:
        assert session.scalars(select(ProviderEvent)).all() == []


def test_a_signed_body_within_the_window_is_accepted(runtime: Runtime) -> None:
    body = json.dumps([{"event": "open", "sg_event_id": "fresh"}]).encode()
    for stamp in (time.time() - 290, time.time() + 290):
        headers = WEBHOOK_KEYS.headers(body, timestamp=str(int(stamp)))
        response = api_client(runtime).post("/webhooks/sendgrid", content=body, headers=headers)
        assert response.status_code == 200, response.text


def test_unsigned_posts_are_refused(runtime: Runtime) -> None:
    response = api_client(runtime).post(
        "/webhooks/sendgrid", json=[{"event": "bounce", "sg_event_id": "x"}]
    )
    assert response.status_code == 403
