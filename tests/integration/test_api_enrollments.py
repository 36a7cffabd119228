"""`POST /v1/enrollments` and `/v1/contacts/{email}`: enrolment by a trusted server is
idempotent by its id (in a row and concurrently), bound by every consent rule, free of
the form's per-IP limit, answers the state; attributes merge (null deletes); an unknown or
forgotten address is 404."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from drip.config import Settings
from drip.contacts.lifecycle import stop_contact
from drip.contacts.privacy import find_contact, forget_contact
from drip.db import transaction, utcnow
from drip.models import Contact, ContactStatus, Delivery, Enrollment
from drip.runtime import Runtime, build_runtime
from drip.testing.threads import run_concurrently
from tests.integration.api_keys import bearer, new_key
from tests.integration.helpers import api_client, deliveries

ADDRESS = "client@example.com"


def enrolment(client_id: str = "crm-1", **fields: Any) -> dict[str, Any]:
    """An enrolment body in the test sequence, unless `fields` say otherwise."""
    return {"id": client_id, "email": ADDRESS, "sequence": "quick", **fields}


@pytest.fixture
def strict_runtime(settings: Settings) -> Iterator[Runtime]:
    """The form allows one signup per minute per IP."""
    rt = build_runtime(settings.model_copy(update={"signup_rate_per_ip": "1/minute"}))
    yield rt
    rt.close()


def enrollments(runtime: Runtime) -> list[Enrollment]:
    with runtime.sessions() as session:
        return list(session.scalars(select(Enrollment).order_by(Enrollment.id)))


def stop(runtime: Runtime, status: ContactStatus, reason: str) -> None:
    with transaction(runtime.sessions) as session:
        contact = find_contact(session, ADDRESS, lock=True)
        assert contact is not None
        stop_contact(session, contact, status=status, reason=reason, now=utcnow())


def test_an_enrolment_is_idempotent_by_its_id_and_answers_its_state(runtime: Runtime) -> None:
    client, headers = api_client(runtime), bearer(new_key(runtime, "enrollments:write"))
    body = enrolment(first_name="Ada", attributes={"target_role": "CFO", "years_experience": 15})
    first = client.post("/v1/enrollments", json=body, headers=headers)
    assert first.status_code == 201, first.text
    assert first.json() == {"id": "crm-1", "sequence": "quick", "state": "active"}
    again = client.post("/v1/enrollments", json={**body, "first_name": "Bob"}, headers=headers)
    assert (again.status_code, again.json()) == (201, first.json())
    assert len(enrollments(runtime)) == 1
    assert len(deliveries(runtime)) == 1
    with runtime.sessions() as session:
        contact = session.scalars(select(Contact)).one()
    assert contact.attributes == {"target_role": "CFO", "years_experience": 15}
    assert (contact.first_name, contact.source) == ("Ada", "api")
    # A new id for the same address changes nothing: 200, already active
    third = client.post("/v1/enrollments", json=enrolment("crm-2"), headers=headers)
    assert (third.status_code, third.json()["state"]) == (200, "active")
    assert len(enrollments(runtime)) == 1


def test_the_same_enrolment_posted_concurrently_has_one_effect(runtime: Runtime) -> None:
    headers = bearer(new_key(runtime, "enrollments:write"))
    app = api_client(runtime).app
    start = threading.Barrier(6)
    answers: list[tuple[int, Any]] = []

    def post() -> None:
        with TestClient(app, base_url="https://drip.test") as client:
            start.wait(timeout=10)
            response = client.post("/v1/enrollments", json=enrolment("crm-9"), headers=headers)
            answers.append((response.status_code, response.json()))

    run_concurrently(post, [()] * 6)
    assert answers == [(201, {"id": "crm-9", "sequence": "quick", "state": "active"})] * 6
    assert len(enrollments(runtime)) == 1
    assert len(deliveries(runtime)) == 1


def test_an_unsubscribed_address_gets_a_confirmation_not_the_sequence(runtime: Runtime) -> None:
    client, headers = api_client(runtime), bearer(new_key(runtime, "enrollments:write"))
    assert client.post("/v1/enrollments", json=enrolment(), headers=headers).status_code == 201
    stop(runtime, ContactStatus.UNSUBSCRIBED, "one-click")
    response = client.post("/v1/enrollments", json=enrolment("crm-2"), headers=headers)
    assert (response.status_code, response.json()["state"]) == (201, "pending_confirmation")
    with runtime.sessions() as session:
        pending = session.scalars(select(Delivery).where(Delivery.status == "queued")).all()
        assert session.scalars(select(Contact.status)).one() is ContactStatus.UNSUBSCRIBED
    assert [d.step_id for d in pending] == ["_confirm"]


def test_a_suppressed_address_is_refused(runtime: Runtime) -> None:
    client, headers = api_client(runtime), bearer(new_key(runtime, "enrollments:write"))
    client.post("/v1/enrollments", json=enrolment(), headers=headers)
    stop(runtime, ContactStatus.SUPPRESSED, "bounce: 550 user unknown")
    before = len(deliveries(runtime))
    body = enrolment("crm-2", attributes={"target_role": "CTO"})
    response = client.post("/v1/enrollments", json=body, headers=headers)
    assert (response.status_code, response.json()["state"]) == (200, "suppressed")
    assert len(deliveries(runtime)) == before
    with runtime.sessions() as session:
        assert session.scalars(select(Contact.attributes)).one() == {}


def test_a_forgotten_address_is_not_enrolled_without_confirmation(runtime: Runtime) -> None:
    client, headers = api_client(runtime), bearer(new_key(runtime, "enrollments:write"))
    client.post("/v1/enrollments", json=enrolment(), headers=headers)
    with transaction(runtime.sessions) as session:
        contact = find_contact(session, ADDRESS, lock=True)
        assert contact is not None
        forget_contact(session, contact, now=utcnow())
    response = client.post("/v1/enrollments", json=enrolment("crm-2"), headers=headers)
    assert response.json()["state"] == "pending_confirmation"


def test_enrolments_are_not_held_by_the_forms_per_ip_limit(strict_runtime: Runtime) -> None:
    client, headers = api_client(strict_runtime), bearer(new_key(strict_runtime))
    assert client.post("/signups", json={"email": "a@example.com"}).status_code == 202
    assert client.post("/signups", json={"email": "b@example.com"}).status_code == 429
    for n in range(3):
        body = enrolment(f"crm-{n}", email=f"server{n}@example.com")
        assert client.post("/v1/enrollments", json=body, headers=headers).status_code == 201


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"sequence": "no-such-sequence"}, "sequence"),
        ({"sequence": None}, "sequence"),
        ({"attributes": {"Bad-Name": 1}}, "attributes"),
        ({"attributes": {"nested": {"a": 1}}}, "attributes"),
        ({"first_name": "Visit evil.example"}, "first_name"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"id": None}, "id"),
    ],
)
def test_a_bad_enrolment_gets_422_naming_the_field(
    runtime: Runtime, fields: dict[str, Any], field: str
) -> None:
    headers = bearer(new_key(runtime, "enrollments:write"))
    response = api_client(runtime).post(
        "/v1/enrollments", json=enrolment(**fields), headers=headers
    )
    assert response.status_code == 422, response.text
    assert [d["loc"][:2] for d in response.json()["detail"]] == [["body", field]]
    assert enrollments(runtime) == []


def test_patch_merges_attributes_and_get_shows_them(runtime: Runtime) -> None:
    client, headers = api_client(runtime), bearer(new_key(runtime))
    client.post("/v1/enrollments", json=enrolment(attributes={"a": 1, "b": "x"}), headers=headers)
    path = f"/v1/contacts/{ADDRESS.upper()}"
    changed = client.patch(path, json={"attributes": {"b": None, "c": True}}, headers=headers)
    assert changed.status_code == 200, changed.text
    assert changed.json()["attributes"] == {"a": 1, "c": True}
    shown = client.get(path, headers=headers).json()
    assert set(shown) == {"email", "status", "attributes", "enrollments"}
    assert (shown["email"], shown["status"], shown["attributes"]) == (
        ADDRESS,
        "active",
        {"a": 1, "c": True},
    )
    assert [(e["sequence"], e["status"]) for e in shown["enrollments"]] == [("quick", "active")]


def test_a_repeated_patch_id_never_undoes_a_later_change(runtime: Runtime) -> None:
    client, headers = api_client(runtime), bearer(new_key(runtime))
    client.post("/v1/enrollments", json=enrolment(), headers=headers)
    path = f"/v1/contacts/{ADDRESS}"
    client.patch(path, json={"id": "p-1", "attributes": {"stage": "lead"}}, headers=headers)
    client.patch(path, json={"id": "p-2", "attributes": {"stage": "client"}}, headers=headers)
    late = client.patch(path, json={"id": "p-1", "attributes": {"stage": "lead"}}, headers=headers)
    assert (late.status_code, late.json()["attributes"]) == (200, {"stage": "client"})


def test_an_unknown_or_forgotten_address_is_404(runtime: Runtime) -> None:
    client, headers = api_client(runtime), bearer(new_key(runtime))
    path = f"/v1/contacts/{ADDRESS}"
    assert client.get(path, headers=headers).status_code == 404
    assert client.patch(path, json={"attributes": {"a": 1}}, headers=headers).status_code == 404
    client.post("/v1/enrollments", json=enrolment(), headers=headers)
    with transaction(runtime.sessions) as session:
        contact = find_contact(session, ADDRESS, lock=True)
        assert contact is not None
        forget_contact(session, contact, now=utcnow())
    assert client.get(path, headers=headers).status_code == 404
    assert client.patch(path, json={"attributes": {"a": 1}}, headers=headers).status_code == 404
    bad = client.get("/v1/contacts/not-an-address", headers=headers)
    assert (bad.status_code, bad.json()["detail"][0]["loc"]) == (422, ["path", "email"])


def test_attributes_that_would_grow_too_large_are_refused_whole(runtime: Runtime) -> None:
    client, headers = api_client(runtime), bearer(new_key(runtime))
    client.post("/v1/enrollments", json=enrolment(), headers=headers)
    path = f"/v1/contacts/{ADDRESS}"
    big = {f"field_{n}": "x" * 900 for n in range(15)}  # about 14 KB
    assert client.patch(path, json={"attributes": big}, headers=headers).status_code == 200
    more = {f"extra_{n}": "y" * 900 for n in range(5)}
    refused = client.patch(path, json={"id": "p-9", "attributes": more}, headers=headers)
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["loc"] == ["body", "attributes"]
    assert client.get(path, headers=headers).json()["attributes"] == big
    # The refused id was not kept: once room is made, the same id applies
    client.patch(path, json={"attributes": dict.fromkeys(big)}, headers=headers)
    again = client.patch(path, json={"id": "p-9", "attributes": more}, headers=headers)
    assert again.json()["attributes"] == more
