"""`POST /v1/events`: stored once by the client's id (sequentially and concurrently), after
the contact's row lock (so an event waits for a send batch in flight); kept for an unknown
address and attached when it signs up, whichever commits first; stored redacted for a
forgotten contact, and erased with it."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from drip.contacts.identity import email_hash
from drip.contacts.privacy import export_contact, find_contact, forget_contact
from drip.db import transaction, utcnow
from drip.events.contact_store import store_contact_event
from drip.models import Contact, ContactEvent
from drip.runtime import Runtime
from drip.signup.request import SignupRequest
from drip.signup.service import enroll_contact
from drip.testing.threads import CheckedThread, run_concurrently
from tests.conftest import wait_for
from tests.integration.api_keys import bearer, lock_waiters, new_key
from tests.integration.helpers import api_client

ADDRESS = "reader@example.com"


def event(client_id: str = "order-1001", **fields: Any) -> dict[str, Any]:
    """An event body: a purchase by `ADDRESS` unless `fields` say otherwise."""
    return {"id": client_id, "email": ADDRESS, "name": "purchased", **fields}


def stored_events(runtime: Runtime) -> list[ContactEvent]:
    with runtime.sessions() as session:
        return list(session.scalars(select(ContactEvent).order_by(ContactEvent.id)))


def sign_up(runtime: Runtime, address: str = ADDRESS) -> None:
    response = api_client(runtime).post("/signups", json={"email": address})
    assert response.status_code == 202, response.text


def test_an_event_is_stored_once_by_its_id_and_a_repeat_gets_the_same_answer(
    runtime: Runtime,
) -> None:
    sign_up(runtime)
    client, headers = api_client(runtime), bearer(new_key(runtime, "events:write"))
    body = event(
        properties={"plan": "executive", "amount": 490}, occurred_at="2026-11-29T10:00:00Z"
    )
    first = client.post("/v1/events", json=body, headers=headers)
    # The same id again, even with another body, changes nothing
    again = client.post("/v1/events", json={**body, "name": "refunded"}, headers=headers)
    assert first.status_code == again.status_code == 202
    assert first.json() == again.json() == {"id": "order-1001", "status": "accepted"}
    (stored,) = stored_events(runtime)
    with runtime.sessions() as session:
        contact = session.scalars(select(Contact)).one()
    assert (stored.name, stored.contact_id, stored.email_hash) == (
        "purchased",
        contact.id,
        email_hash(ADDRESS),
    )
    assert stored.properties == {"plan": "executive", "amount": 490}
    assert stored.occurred_at.isoformat() == "2026-11-29T10:00:00+00:00"


def test_the_same_id_posted_concurrently_has_one_effect(runtime: Runtime) -> None:
    sign_up(runtime)
    headers = bearer(new_key(runtime, "events:write"))
    app = api_client(runtime).app
    start = threading.Barrier(8)
    answers: list[tuple[int, Any]] = []

    def post(address: str) -> None:
        with TestClient(app, base_url="https://drip.test") as client:
            start.wait(timeout=10)
            response = client.post(
                "/v1/events", json=event("dup-7", email=address), headers=headers
            )
            answers.append((response.status_code, response.json()))

    # Half of them name the address in another case: the same contact, the same event
    run_concurrently(post, [(ADDRESS,), (ADDRESS.upper(),)] * 4)
    assert answers == [(202, {"id": "dup-7", "status": "accepted"})] * 8
    assert len(stored_events(runtime)) == 1


def test_an_event_waits_for_a_send_batch_holding_the_contact(runtime: Runtime) -> None:
    """A send batch holds its contacts FOR SHARE across the provider calls: the event's 202
    comes only after the batch ends, so every later send-time check sees the event."""
    sign_up(runtime)
    headers = bearer(new_key(runtime, "events:write"))
    answered = threading.Event()

    def post() -> None:
        response = api_client(runtime).post("/v1/events", json=event(), headers=headers)
        assert response.status_code == 202
        answered.set()

    with runtime.sessions() as batch, batch.begin():
        batch.scalars(select(Contact).with_for_update(read=True)).one()  # the batch's check
        poster = CheckedThread(post, name="event")
        poster.start()
        wait_for(lambda: lock_waiters(runtime) or answered.is_set(), what="the event to wait")
        assert not answered.is_set(), "the event was accepted while a send batch held its contact"
        assert stored_events(runtime) == []
    poster.join(timeout=10)
    assert answered.is_set()
    assert len(stored_events(runtime)) == 1


def test_an_event_for_an_unknown_address_is_kept_and_attached_at_signup(runtime: Runtime) -> None:
    headers = bearer(new_key(runtime, "events:write"))
    client = api_client(runtime)
    assert client.post("/v1/events", json=event(), headers=headers).status_code == 202
    (kept,) = stored_events(runtime)
    assert (kept.contact_id, kept.email_hash, kept.applied_at) == (None, email_hash(ADDRESS), None)
    # An event for another unknown address stays apart
    other = event("order-2", email="someone.else@example.com")
    assert client.post("/v1/events", json=other, headers=headers).status_code == 202
    sign_up(runtime, ADDRESS.upper())
    with runtime.sessions() as session:
        contact = session.scalars(select(Contact)).one()
    mine, theirs = stored_events(runtime)
    assert (mine.contact_id, theirs.contact_id) == (contact.id, None)


def _signup_request() -> SignupRequest:
    return SignupRequest(email=ADDRESS)


def test_an_event_racing_the_signup_of_its_address_is_attached_when_the_signup_leads(
    runtime: Runtime,
) -> None:
    """The signup has inserted the contact but not committed when the event arrives: the
    event waits for it, then finds the contact."""
    headers = bearer(new_key(runtime, "events:write"))
    answered = threading.Event()

    def post() -> None:
        assert (
            api_client(runtime).post("/v1/events", json=event(), headers=headers).status_code == 202
        )
        answered.set()

    with transaction(runtime.sessions) as signup:
        enroll_contact(
            signup,
            _signup_request(),
            catalog=runtime.catalog,
            default_sequence="quick",
            now=utcnow(),
            queue_lease=30,
        )
        poster = CheckedThread(post, name="event")
        poster.start()
        wait_for(lambda: lock_waiters(runtime) or answered.is_set(), what="the event to wait")
    poster.join(timeout=10)
    (stored,) = stored_events(runtime)
    assert stored.contact_id is not None


def test_an_event_racing_the_signup_of_its_address_is_attached_when_the_event_leads(
    runtime: Runtime,
) -> None:
    """The event is stored for an unknown address but not committed when the signup comes:
    the signup waits for it, then attaches it."""
    done = threading.Event()

    def sign_up_now() -> None:
        sign_up(runtime)
        done.set()

    with transaction(runtime.sessions) as posting:
        now = utcnow()
        store_contact_event(
            posting,
            client_id="order-1001",
            email=ADDRESS,
            name="purchased",
            properties={},
            occurred_at=now,
            now=now,
        )
        signer = CheckedThread(sign_up_now, name="signup")
        signer.start()
        wait_for(lambda: lock_waiters(runtime) or done.is_set(), what="the signup to wait")
    signer.join(timeout=10)
    (stored,) = stored_events(runtime)
    assert stored.contact_id is not None


def test_events_of_a_forgotten_contact_are_erased_and_later_ones_stored_redacted(
    runtime: Runtime,
) -> None:
    sign_up(runtime)
    client, headers = api_client(runtime), bearer(new_key(runtime, "events:write"))
    secret = {"card_last4": "4242", "company": "Probe Corp"}
    client.post("/v1/events", json=event(properties=secret), headers=headers)
    with transaction(runtime.sessions) as session:
        contact = find_contact(session, ADDRESS, lock=True)
        assert contact is not None
        exported = export_contact(session, contact)["contact_events"]
        assert [e["properties"] for e in exported] == [secret]
        forget_contact(session, contact, now=utcnow())
    late = event("order-1002", properties=secret)
    assert client.post("/v1/events", json=late, headers=headers).status_code == 202
    events = stored_events(runtime)
    assert [e.properties for e in events] == [{"redacted": True}] * 2
    assert [e.name for e in events] == ["purchased"] * 2


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"id": ""}, "id"),
        ({"id": "x" * 201}, "id"),
        ({"id": "a\u0000b"}, "id"),
        ({"id": "line\nbreak"}, "id"),
        ({"email": "not-an-address"}, "email"),
        ({"name": "Purchased"}, "name"),
        ({"name": "a" * 65}, "name"),
        ({"properties": {"blob": "x" * 17_000}}, "properties"),
        ({"properties": {"text": "\ud800"}}, "properties"),
        ({"properties": [1, 2]}, "properties"),
        ({"occurred_at": "2026-11-29T10:00:00"}, "occurred_at"),  # no zone
        ({"occurred_at": "0001-01-01T00:00:00+01:00"}, "occurred_at"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_a_bad_event_gets_422_naming_the_field(
    runtime: Runtime, fields: dict[str, Any], field: str
) -> None:
    headers = bearer(new_key(runtime, "events:write"))
    # Sent as ASCII JSON, so that a lone surrogate travels as the escape a client may send
    body = json.dumps(event(**fields)).encode()
    headers["Content-Type"] = "application/json"
    response = api_client(runtime).post("/v1/events", content=body, headers=headers)
    assert response.status_code == 422, response.text
    assert [d["loc"] for d in response.json()["detail"]] == [["body", field]]
    assert stored_events(runtime) == []


def test_an_event_more_than_a_day_ahead_is_refused(runtime: Runtime) -> None:
    headers = bearer(new_key(runtime, "events:write"))
    client = api_client(runtime)
    ahead = (utcnow() + timedelta(days=1, minutes=5)).isoformat()
    response = client.post("/v1/events", json=event(occurred_at=ahead), headers=headers)
    assert response.status_code == 422
    assert "future" in response.json()["detail"][0]["msg"]
    soon = (utcnow() + timedelta(hours=23)).isoformat()
    assert (
        client.post("/v1/events", json=event(occurred_at=soon), headers=headers).status_code == 202
    )
