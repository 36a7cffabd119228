"""One batch, every outcome: each row of a batch moves on its own condition, with its own
values, and only the rows recorded as sent plan a next step (PostgreSQL's array path)."""

from __future__ import annotations

from sqlalchemy import update

from drip.db import utcnow
from drip.models import Contact, ContactStatus, Delivery, DeliveryStatus
from drip.runtime import Runtime
from drip.send.message import OutgoingEmail
from drip.send.sender import Outcome
from drip.send.transports.base import Transport
from drip.testing.fake_sendgrid import FakeSendGrid, Scripted
from tests.integration.helpers import api_client, deliveries


class TakeOverOn:
    """Passes emails through; the one for `address` finds its row taken over by the
    scheduler mid-call (its lease ran out), as a very slow provider would cause."""

    def __init__(self, inner: Transport, runtime: Runtime, address: str) -> None:
        self.inner, self.runtime, self.address = inner, runtime, address

    def send(self, email: OutgoingEmail) -> str:
        if email.to_email == self.address:
            with self.runtime.sessions() as session, session.begin():
                session.execute(
                    update(Delivery)
                    .where(Delivery.id == int(email.custom_args["delivery_id"]))
                    .values(status=DeliveryStatus.QUEUED, lease_until=None)
                )
        return self.inner.send(email)

    def close(self) -> None:
        self.inner.close()


def test_a_batch_records_each_outcome_on_its_own_row(
    runtime: Runtime, fake_sendgrid: FakeSendGrid
) -> None:
    # Given five subscribers whose first email waits queued (no worker runs)
    client = api_client(runtime)
    names = ["ana", "ben", "cal", "dee", "eve"]
    for name in names:
        assert client.post("/signups", json={"email": f"{name}@example.com"}).status_code == 202
    rows = {d.id: d for d in deliveries(runtime)}
    by_name = dict(zip(names, sorted(rows), strict=True))
    # And ben unsubscribed after his email was queued, cal's address is refused by the
    # provider, and dee's row is taken over while the provider answers
    with runtime.sessions() as session, session.begin():
        session.execute(
            update(Contact)
            .where(Contact.id == rows[by_name["ben"]].contact_id)
            .values(status=ContactStatus.UNSUBSCRIBED, status_reason="unsubscribe")
        )
    runtime.sender.transmitter.concurrency = 1  # in order, so the script meets cal
    runtime.sender.transmitter.transport = TakeOverOn(runtime.transport, runtime, "dee@example.com")
    fake_sendgrid.script(
        [202, Scripted(400, body={"errors": [{"message": "Invalid address", "field": "to"}]})]
    )

    # When one batch carries all five, one of them twice, and an id that is not queued
    results = runtime.sender.send_batch([*by_name.values(), by_name["eve"], 999_999])

    # Then each outcome is its own
    outcome = {name: results[i].outcome for name, i in by_name.items()}
    assert outcome == {
        "ana": Outcome.SENT,
        "ben": Outcome.CANCELLED,
        "cal": Outcome.FAILED,
        "dee": Outcome.SENT,
        "eve": Outcome.SENT,
    }
    assert results[999_999].outcome is Outcome.NOT_MINE
    after = {d.id: d for d in deliveries(runtime)}
    row = {name: after[i] for name, i in by_name.items()}
    assert row["ben"].status is DeliveryStatus.CANCELLED
    assert row["ben"].error == "contact unsubscribed: unsubscribe"
    assert row["cal"].status is DeliveryStatus.FAILED
    assert "400: Invalid address (field to)" in (row["cal"].error or "")
    assert row["cal"].provider_message_id is None
    # And the emails the provider accepted carry their own ids; dee's row, taken over, is
    # left to the scheduler (its email went, the `processed` event will settle it)
    accepted = {a.delivery_id: a.message_id for a in fake_sendgrid.accepted}
    for name in ("ana", "eve"):
        assert row[name].status is DeliveryStatus.SENT
        assert row[name].provider_message_id == accepted[str(by_name[name])]
        assert row[name].sent_at is not None
        assert row[name].error is None
    assert row["dee"].status is DeliveryStatus.QUEUED
    assert row["dee"].provider_message_id is None
    # And only the rows recorded as sent planned their next step, once each
    planned = [d for d in after.values() if d.id not in rows]
    assert sorted((d.contact_id, d.step_id, d.status) for d in planned) == sorted(
        (rows[by_name[n]].contact_id, "second", DeliveryStatus.SCHEDULED) for n in ("ana", "eve")
    )
    assert [results[by_name[n]].next_delivery for n in names] == [None] * 5


def test_a_batch_sharing_a_body_is_one_request_and_each_reader_gets_their_own_links(
    runtime: Runtime, fake_sendgrid: FakeSendGrid
) -> None:
    # Given four subscribers past step 1, which reads contact.attributes: rendered in full,
    # one request each
    client = api_client(runtime)
    for name in ["fay", "gus", "hal", "ivy"]:
        assert client.post("/signups", json={"email": f"{name}@example.com"}).status_code == 202
    runtime.sender.send_batch([d.id for d in deliveries(runtime)])
    assert len(fake_sendgrid.requests) == 4
    # And their step 2 (one body for everyone) made due now
    with runtime.sessions() as session, session.begin():
        session.execute(
            update(Delivery)
            .where(Delivery.step_id == "second")
            .values(status=DeliveryStatus.QUEUED, due_at=utcnow())
        )
    ids = [d.id for d in deliveries(runtime) if d.step_id == "second"]
    assert len(ids) == 4

    # When one batch sends them
    results = runtime.sender.send_batch(ids)

    # Then the provider got one more request, and each reader the email addressed to them
    assert {results[i].outcome for i in ids} == {Outcome.SENT}
    assert len(fake_sendgrid.requests) == 5
    assert len(fake_sendgrid.requests[-1]["personalizations"]) == 4
    unsubscribe_links = set()
    for got in fake_sendgrid.accepted[4:]:
        link = got.payload["headers"]["List-Unsubscribe"].strip("<>")
        html, text = got.payload["content"][1]["value"], got.payload["content"][0]["value"]
        assert f'href="{link}?sequence=quick"' in html  # the footer links to their own page
        assert f"Unsubscribe: {link}?sequence=quick" in text
        assert "dripslot" not in html + text
        unsubscribe_links.add(link)
    assert len(unsubscribe_links) == 4
    # And every row records the request's message id
    rows = [d for d in deliveries(runtime) if d.id in ids]
    assert {d.status for d in rows} == {DeliveryStatus.SENT}
    assert {d.provider_message_id for d in rows} == {fake_sendgrid.accepted[-1].message_id}
