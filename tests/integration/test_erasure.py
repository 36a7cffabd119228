"""`forget` erases everything that can name a subscriber, `export` returns all of it, and
nothing about a forgotten subscriber is stored again.

The columns that can hold personal data are listed here, table by table, from the models:
a new text or JSON column fails `test_every_text_and_json_column_is_classified` until it is
classified, and every listed column is searched after `forget`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import JSON, String, Text, select
from sqlalchemy.orm import Session

from drip.audit import record_audit
from drip.config import Settings
from drip.contacts.privacy import export_contact, find_contact, forget_contact
from drip.db import transaction, utcnow
from drip.events.effects import apply_events
from drip.models import Base, Contact, ContactStatus, Download, LinkClick, ProviderEvent
from drip.reports.timeline import contact_timeline
from drip.runtime import Runtime, build_runtime
from drip.testing.fake_sendgrid import FakeSendGrid
from tests.integration.conftest import WEBHOOK_KEYS
from tests.integration.helpers import api_client, deliveries

#: Columns that can name a subscriber, or link to one from outside (the public id is in
#: every link ever sent): each is searched for the subscriber's data after `forget`.
PERSONAL = {
    "contacts.email": "the address",
    "contacts.first_name": "given at signup",
    "contacts.timezone": "given at signup",
    "contacts.source": "given at signup",
    "contacts.attributes": "given at signup or by an import",
    "contacts.status_reason": "a bounce reason quotes the address",
    "contacts.public_id": "carried by every unsubscribe, download and confirmation link",
    "deliveries.error": "a provider's refusal or a cancellation reason may quote the address",
    "provider_events.payload": "the address, the client's IP and user agent, reason texts",
    "audit_entries.target": "an operator action names the contact by address or public id",
    "audit_entries.reason": "typed by an operator: may quote the address",
    "audit_entries.details": "free-form details of an operator action",
    "contact_events.properties": "whatever another app reported with the event",
    "link_clicks.url": "a clicked link's target: a template may put the contact's data in it",
}
#: Text and JSON columns that name no subscriber, and why.
NOT_PERSONAL = {
    "link_clicks.machine_reason": "the rule that took a click for a machine's",
    "provider_event_ids.sg_event_id": "SendGrid's opaque event id, kept to refuse replays",
    "housekeeping_runs.name": "a job's name",
    **{
        f"{table}.{column}": f"the funnel's counts: {what}"
        for table in ("delivery_counts", "delivery_count_deltas", "funnel_attributions")
        for column, what in (
            ("sequence_id", "a sequence file's id"),
            ("step_id", "a step's id"),
            ("measure", "an enumeration"),
        )
    },
    "contacts.email_hash": "keyed HMAC (drip.contacts.identity): the suppression entry kept",
    "contacts.status": "an enumeration",
    "enrollments.sequence_id": "a sequence file's id",
    "enrollments.status": "an enumeration",
    "deliveries.sequence_id": "a sequence file's id",
    "deliveries.step_id": "a step's id",
    "deliveries.status": "an enumeration",
    "deliveries.provider_message_id": "the provider's opaque message id",
    "deliveries.sequence_version": "a digest of the sequence file",
    "provider_events.sg_event_id": "the provider's opaque event id",
    "provider_events.event": "the event type",
    "downloads.sequence_id": "a sequence file's id",
    "sequence_states.sequence_id": "a sequence file's id",
    "sequence_states.paused_by": "an operator's name, not a subscriber's",
    "sequence_states.reason": "why an operator paused a sequence",
    "audit_entries.action": "the action's name",
    "audit_entries.operator": "an operator's name, not a subscriber's",
    "hash_key_checks.name": "the name of a check",
    "hash_key_checks.fingerprint": "an HMAC of a fixed label: names no one",
    "api_keys.prefix": "the public part of an API key",
    "api_keys.key_hash": "a SHA-256 of an API key",
    "api_keys.name": "what an operator named a key",
    "api_keys.scopes": "an enumeration",
    "api_requests.kind": "the kind of request",
    "api_requests.client_id": "the client's opaque id of a write (README: never an address)",
    "api_requests.answer": "the answer: the client's id, a sequence id and a state",
    "contact_events.client_id": "the client's opaque id of an event (README: never an address)",
    "contact_events.email_hash": "keyed HMAC (drip.contacts.identity), as contacts.email_hash",
    "contact_events.name": "the event's name, such as purchased",
    "webhook_endpoints.url": "a receiving system's URL",
    "webhook_endpoints.secret_env": "the name of an environment variable",
    "webhook_endpoints.source": "an enumeration",
    "webhook_endpoints.disabled_reason": "why an endpoint stopped: an operator's name or a 410",
    "webhook_subscriptions.event_type": "an event type",
    "webhook_events.event_id": "a random event id",
    "webhook_events.event_type": "an event type",
    "webhook_events.status": "an enumeration",
    "webhook_events.data": "ids, sequence, step and goal names, a link without its query: the"
    " address is read from the contact when sent (drip.webhooks.events)",
    "webhook_events.last_error": "the receiver's answer or a connection error",
    "webhook_attempts.error": "the receiver's answer or a connection error",
}

ADDRESS = "xiaolin.erase@example.com"
#: Values only this subscriber's rows hold: none may survive `forget`.
NAME, ZONE, SOURCE, COMPANY = "Xiaolin", "Pacific/Chatham", "erasure-probe", "Probe Corp"
IP, AGENT = "203.0.113.77", "Mozilla/5.0 (ErasureProbe)"
ADMIN_TOKEN = "an-admin-token-long-enough-for-the-admin-page"


def text_columns() -> dict[str, Any]:
    """Every text and JSON column of every table, as `table.column`."""
    return {
        f"{table.name}.{column.name}": column
        for table in Base.metadata.sorted_tables
        for column in table.columns
        if isinstance(column.type, String | Text | JSON)
    }


def test_every_text_and_json_column_is_classified() -> None:
    columns = set(text_columns())
    unclassified = columns - PERSONAL.keys() - NOT_PERSONAL.keys()
    assert not unclassified, f"classify these columns in PERSONAL or NOT_PERSONAL: {unclassified}"
    assert not (PERSONAL.keys() | NOT_PERSONAL.keys()) - columns, "classified columns gone"


@pytest.fixture
def admin_runtime(settings: Settings) -> Iterator[Runtime]:
    rt = build_runtime(settings.model_copy(update={"admin_token": ADMIN_TOKEN}))
    yield rt
    rt.close()


def post_events(runtime: Runtime, events: list[dict[str, Any]]) -> None:
    """Post signed events and apply them, as the worker would."""
    body = json.dumps(events).encode()
    response = api_client(runtime).post(
        "/webhooks/sendgrid", content=body, headers=WEBHOOK_KEYS.headers(body)
    )
    assert response.status_code == 200, response.text
    with transaction(runtime.sessions) as session:
        ids = session.scalars(
            select(ProviderEvent.id).where(ProviderEvent.processed_at.is_(None))
        ).all()
        apply_events(session, ids, now=utcnow())


def events_about(address: str, delivery_id: int | None, stamp: int) -> list[dict[str, Any]]:
    """A delivered and an open event of a delivery, and a bounce that names no delivery."""
    common = {"email": address, "timestamp": stamp, "ip": IP, "useragent": AGENT}
    return [
        {
            **common,
            "event": "delivered",
            "delivery_id": str(delivery_id),
            "sg_event_id": f"d{stamp}",
        },
        {**common, "event": "open", "delivery_id": str(delivery_id), "sg_event_id": f"o{stamp}"},
        {
            **common,
            "event": "bounce",
            "type": "bounce",
            "reason": f"550 5.1.1 <{address}>: user unknown",
            "sg_event_id": f"b{stamp}",
        },
    ]


def snapshot(session: Session) -> dict[tuple[str, int, str], Any]:
    """The value of every personal column of every row, by (table, row id, column)."""
    values = {}
    for name in PERSONAL:
        table_name, column = name.split(".")
        table = Base.metadata.tables[table_name]
        for row in session.execute(select(table.c.id, table.c[column])):
            values[(table_name, row[0], column)] = row[1]
    return values


def leaks(session: Session, markers: list[str]) -> list[str]:
    """Every (column, marker) where a text or JSON column of any row still holds a marker."""
    found = []
    for name, column in text_columns().items():
        for value in session.scalars(select(column)):
            text = json.dumps(value) if not isinstance(value, str) else value
            found += [f"{name}: {m}" for m in markers if m.lower() in (text or "").lower()]
    return found


#: Where `export_contact` puts the rows of each table.
EXPORT_KEYS = {
    "contacts": "contact",
    "enrollments": "enrollments",
    "deliveries": "deliveries",
    "provider_events": "provider_events",
    "downloads": "downloads",
    "audit_entries": "audit",
    "link_clicks": "link_clicks",
}


def exported_rows(export: dict[str, Any]) -> dict[tuple[str, int], dict[str, Any]]:
    """The rows of an export, by (table, row id)."""
    rows = {}
    for table, key in EXPORT_KEYS.items():
        part = export[key]
        for row in [part] if isinstance(part, dict) else part:
            rows[(table, row["id"])] = row
    return rows


def page_of(response: Any) -> tuple[int, str]:
    """A response's status and page, without its per-response nonce."""
    return response.status_code, re.sub(r'nonce="[^"]*"', "", response.text)


def test_forget_erases_every_personal_column_and_export_returned_all_of_it(
    admin_runtime: Runtime, fake_sendgrid: FakeSendGrid
) -> None:
    runtime, client = admin_runtime, api_client(admin_runtime)
    # Given a subscriber who gave everything a signup takes, got email 1 and downloaded its file
    signup = {"email": ADDRESS.upper(), "first_name": NAME, "timezone": ZONE, "source": SOURCE}
    assert client.post("/signups", json=signup).status_code == 202
    (first,) = deliveries(runtime)
    assert runtime.sender.send(first.id).outcome.value == "sent"
    html = fake_sendgrid.accepted[0].payload["content"][1]["value"]
    download = re.search(r'href="https://drip\.test(/download/[^"]+)"', html)
    assert download is not None
    assert client.get(download.group(1)).status_code == 200
    unsubscribe = fake_sendgrid.accepted[0].payload["headers"]["List-Unsubscribe"]
    unsubscribe_path = re.search(r"<https://drip\.test(/unsubscribe/[^>]+)>", unsubscribe)
    assert unsubscribe_path is not None
    with transaction(runtime.sessions) as session:
        contact = session.scalars(select(Contact)).one()
        contact.attributes = {"company": COMPANY}
        old_public_id = contact.public_id
        record_audit(
            session,
            action="contact.note",
            operator="ops",
            now=utcnow(),
            reason=f"asked by {ADDRESS} on the phone",
            target=contact.public_id,
            details={"from": ADDRESS},
        )
        # and followed a link whose template put the company in its query
        session.add(
            LinkClick(
                delivery_id=first.id,
                link_index=0,
                url=f"https://example.com/offer?company={COMPANY}",
                human=True,
                clicked_at=utcnow(),
            )
        )
    # And the provider reported its delivery, an open (IP, user agent) and a bounce that names
    # no delivery (its reason quotes the address); the bounce cancelled step 2 with that reason
    post_events(runtime, events_about(ADDRESS, first.id, 1_700_000_000))
    markers = [ADDRESS, NAME, ZONE, SOURCE, COMPANY, IP, AGENT, old_public_id]
    with runtime.sessions() as session:
        assert len(leaks(session, markers)) >= len(markers), "the story must store each marker"
        before = snapshot(session)
        contact = find_contact(session, ADDRESS)
        assert contact is not None
        exported = exported_rows(export_contact(session, contact))

    # When the subscriber is forgotten
    with transaction(runtime.sessions) as session:
        contact = find_contact(session, ADDRESS, lock=True)
        assert contact is not None
        forget_contact(session, contact, now=utcnow())

    with runtime.sessions() as session:
        # Then no text or JSON column of any table holds anything of the subscriber
        assert leaks(session, markers) == []
        contact = session.scalars(select(Contact)).one()
        assert (contact.email, contact.first_name, contact.timezone, contact.source) == (
            None,
            None,
            None,
            None,
        )
        assert contact.attributes == {}
        assert contact.public_id != old_public_id
        # A bounce outlives the erasure, without its text: the address is never mailed again
        assert contact.status is ContactStatus.SUPPRESSED
        assert contact.status_reason == "bounce"
        # And every value forget changed was in the export
        after = snapshot(session)
        changed = {cell: old for cell, old in before.items() if after.get(cell) != old}
        assert {cell[0] for cell in changed} >= {
            "contacts",
            "deliveries",
            "provider_events",
            "audit_entries",
        }
        for (table, row_id, column), old in changed.items():
            assert exported.get((table, row_id), {}).get(column) == old, (table, row_id, column)
        # And what the operators' pages show names no one
        timeline = contact_timeline(session, contact)
        downloads_before = session.scalars(select(Download.id)).all()
    shown = json.dumps(timeline.as_dict())
    assert [m for m in markers if m.lower() in shown.lower()] == []
    page = client.post(
        "/admin/contact",
        data={"email": ADDRESS},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    assert page.status_code == 200
    assert "(forgotten)" in page.text
    assert [m for m in markers if m.lower() in page.text.lower()] == []

    # And the links in the emails already sent answer as for an unknown contact
    assert client.get(download.group(1)).status_code == 400
    stranger = runtime.signer.sign("0" * 32)
    assert page_of(client.get(unsubscribe_path.group(1))) == page_of(
        client.get(f"/unsubscribe/{stranger}")
    )
    assert client.post(unsubscribe_path.group(1)).status_code == 400
    with runtime.sessions() as session:
        assert session.scalars(select(Download.id)).all() == downloads_before
    # And an unsubscribe link of the forgotten contact's new id re-subscribes no one
    fresh = runtime.signer.sign(contact.public_id)
    assert client.post(f"/unsubscribe/{fresh}").status_code == 200
    with runtime.sessions() as session:
        assert session.scalars(select(Contact.status)).one() is ContactStatus.SUPPRESSED


def test_events_about_a_forgotten_or_unknown_contact_are_stored_redacted(
    runtime: Runtime, fake_sendgrid: FakeSendGrid
) -> None:
    # Given a subscriber who got email 1 and was then forgotten (never bounced)
    client = api_client(runtime)
    client.post("/signups", json={"email": ADDRESS, "first_name": NAME})
    (first,) = deliveries(runtime)
    assert runtime.sender.send(first.id).outcome.value == "sent"
    with transaction(runtime.sessions) as session:
        contact = find_contact(session, ADDRESS, lock=True)
        assert contact is not None
        forget_contact(session, contact, now=utcnow())
    # When the provider reports on it later (by delivery, and by address alone), and on an
    # address drip never knew
    late = events_about(ADDRESS, first.id, 1_700_000_100)
    stranger = events_about("stranger@example.net", None, 1_700_000_200)
    post_events(runtime, [*late, *stranger])
    with runtime.sessions() as session:
        stored = session.scalars(select(ProviderEvent).order_by(ProviderEvent.id)).all()
        # Then every payload is stored redacted: the funnel's fields only
        assert [e.event for e in stored] == ["delivered", "open", "bounce"] * 2
        assert all(e.payload.get("redacted") is True for e in stored)
        assert leaks(session, [ADDRESS, "stranger@example.net", IP, AGENT, NAME]) == []
        assert stored[0].payload == {
            "event": "delivered",
            "delivery_id": str(first.id),
            "sg_event_id": "d1700000100",
            "timestamp": 1_700_000_100,
            "redacted": True,
        }
        # And the forgotten contact stays forgotten: the late bounce changed nothing
        contact = session.scalars(select(Contact)).one()
        assert contact.status is ContactStatus.FORGOTTEN
        assert contact.status_reason == "forgotten on request"


def test_events_about_a_known_contact_are_stored_whole(
    runtime: Runtime, fake_sendgrid: FakeSendGrid
) -> None:
    client = api_client(runtime)
    client.post("/signups", json={"email": ADDRESS})
    (first,) = deliveries(runtime)
    post_events(runtime, events_about(ADDRESS, first.id, 1_700_000_300)[:1])
    with runtime.sessions() as session:
        (event,) = session.scalars(select(ProviderEvent)).all()
    assert event.payload["ip"] == IP
    assert "redacted" not in event.payload
