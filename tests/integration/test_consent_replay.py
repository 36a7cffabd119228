"""A consent is given once: a confirmation link confirms the request it answers, in its own
sequence, within `DRIP_CONFIRMATION_TTL`, and never undoes a later unsubscribe."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import dramatiq
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from drip.models import Contact, ContactStatus, Enrollment, EnrollmentStatus
from drip.runtime import Runtime
from drip.sequences.catalog import SequenceCatalog
from drip.testing.fake_sendgrid import FakeSendGrid
from drip.unsubscribe.tokens import TokenSigner
from tests.integration.conftest import drain
from tests.integration.helpers import api_client
from tests.integration.test_subscriber_trust import link_in, steps_received

EMAIL = "ola@example.com"


@pytest.fixture
def two_double_opt_in(runtime: Runtime, sequences_dir: Path) -> Runtime:
    """Sequences `quick` and `quick-b`, both double opt-in."""
    path = sequences_dir / "quick.yaml"
    text = path.read_text().replace("timezone: UTC", "timezone: UTC\ndouble_opt_in: true")
    path.write_text(text)
    (sequences_dir / "quick-b.yaml").write_text(
        text.replace("id: quick", "id: quick-b", 1).replace("name: A", "name: Another", 1)
    )
    runtime.catalog = runtime.sender.catalog = SequenceCatalog.load(
        sequences_dir, postal_address="x"
    )
    return runtime


def sign_up(client: TestClient, runtime: Runtime, worker: dramatiq.Worker, sequence: str) -> None:
    assert client.post("/signups", json={"email": EMAIL, "sequence": sequence}).status_code == 202
    drain(runtime, worker)


def state(runtime: Runtime) -> tuple[ContactStatus, dict[str, EnrollmentStatus]]:
    with runtime.sessions() as session:
        contact = session.scalars(select(Contact)).one()
        enrollments = session.scalars(select(Enrollment).where(Enrollment.contact_id == contact.id))
        return contact.status, {e.sequence_id: e.status for e in enrollments}


def public_id(runtime: Runtime) -> str:
    with runtime.sessions() as session:
        return session.scalars(select(Contact.public_id)).one()


def signed_at(runtime: Runtime, seconds_from_now: float) -> TokenSigner:
    """The runtime's signer as it was (or will be) `seconds_from_now` seconds from now."""
    return TokenSigner(
        runtime.settings.secret_key or "", clock=lambda: time.time() + seconds_from_now
    )


def unsubscribe_everything(client: TestClient, runtime: Runtime) -> None:
    token = runtime.signer.sign(public_id(runtime))
    client.post(f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"})


def test_an_old_confirmation_cannot_resubscribe_someone_who_left_everything(
    two_double_opt_in: Runtime, worker: dramatiq.Worker, fake_sendgrid: FakeSendGrid
) -> None:
    runtime, client = two_double_opt_in, api_client(two_double_opt_in)
    # Given a subscriber who confirmed sequence A by the link in their email
    sign_up(client, runtime, worker, "quick")
    old_link = link_in(fake_sendgrid, 0, "confirm")
    assert "you are confirmed" in client.post(old_link).text
    drain(runtime, worker)
    # And who then unsubscribed from everything
    unsubscribe_everything(client, runtime)
    # When someone signs the address up for sequence B (the owner gets a confirmation email)
    sign_up(client, runtime, worker, "quick-b")
    assert steps_received(fake_sendgrid) == ["_confirm", "welcome", "_confirm"]
    # And replays the old confirmation token against B, and against A
    token = old_link.rsplit("/", 1)[1]
    replay_b = client.post(f"/confirm/quick-b/{token}")
    replay_a = client.post(old_link)
    # Then neither makes the subscriber active again, and nothing more is sent
    assert (replay_b.status_code, replay_a.status_code) == (400, 410)
    assert state(runtime) == (
        ContactStatus.UNSUBSCRIBED,
        {"quick": EnrollmentStatus.CANCELLED, "quick-b": EnrollmentStatus.PENDING},
    )
    drain(runtime, worker)
    assert len(fake_sendgrid.accepted) == 3
    # Only the owner's own click on B's new email brings them back
    assert "you are confirmed" in client.post(link_in(fake_sendgrid, 2, "confirm")).text
    assert state(runtime)[0] is ContactStatus.ACTIVE


def test_a_confirmation_opens_only_the_sequence_it_was_sent_for(
    two_double_opt_in: Runtime, worker: dramatiq.Worker, fake_sendgrid: FakeSendGrid
) -> None:
    runtime, client = two_double_opt_in, api_client(two_double_opt_in)
    # Given two open requests, one per sequence
    sign_up(client, runtime, worker, "quick")
    sign_up(client, runtime, worker, "quick-b")
    link_a = link_in(fake_sendgrid, 0, "confirm")
    assert "/confirm/quick/" in link_a
    # When A's token is posted to B's address (GET or POST)
    forged = link_a.replace("/confirm/quick/", "/confirm/quick-b/")
    assert client.get(forged).status_code == 400
    assert client.post(forged).status_code == 400
    # Then B is still waiting for its own link
    assert state(runtime)[1]["quick-b"] is EnrollmentStatus.PENDING
    assert client.post(link_in(fake_sendgrid, 1, "confirm")).status_code == 200
    assert state(runtime)[1]["quick-b"] is EnrollmentStatus.ACTIVE


def test_a_confirmation_of_an_earlier_request_is_refused(
    two_double_opt_in: Runtime, worker: dramatiq.Worker, fake_sendgrid: FakeSendGrid
) -> None:
    runtime, client = two_double_opt_in, api_client(two_double_opt_in)
    # Given a request open now, and a token of this contact and sequence made a day ago
    # (the email of an earlier request: still within its lifetime, and never unsubscribed)
    sign_up(client, runtime, worker, "quick")
    token = signed_at(runtime, -86400).sign_confirm(public_id(runtime), "quick")
    # Then it confirms nothing: it answers a request that is not the open one
    response = client.post(f"/confirm/quick/{token}")
    assert response.status_code == 410
    assert state(runtime) == (ContactStatus.ACTIVE, {"quick": EnrollmentStatus.PENDING})
    assert client.post(link_in(fake_sendgrid, 0, "confirm")).status_code == 200


def test_a_confirmation_made_before_the_last_unsubscribe_is_refused(
    two_double_opt_in: Runtime, worker: dramatiq.Worker, fake_sendgrid: FakeSendGrid
) -> None:
    runtime, client = two_double_opt_in, api_client(two_double_opt_in)
    # Given a subscriber of A who unsubscribed from everything, then asked for B at once
    sign_up(client, runtime, worker, "quick")
    client.post(link_in(fake_sendgrid, 0, "confirm"))
    drain(runtime, worker)
    unsubscribe_everything(client, runtime)
    with runtime.sessions() as session:
        stopped = session.scalars(select(Contact.status_changed_at)).one()
    assert stopped is not None
    sign_up(client, runtime, worker, "quick-b")
    # And a token for B made a second before that unsubscribe (so close to the new
    # request that clock skew alone would let it pass)
    before = stopped.replace(microsecond=0).timestamp() - 1 - time.time()
    token = signed_at(runtime, before).sign_confirm(public_id(runtime), "quick-b")
    # Then it does not undo the unsubscribe
    assert client.post(f"/confirm/quick-b/{token}").status_code == 410
    assert state(runtime)[0] is ContactStatus.UNSUBSCRIBED


def test_an_expired_link_and_a_broken_link_get_different_pages(
    two_double_opt_in: Runtime, worker: dramatiq.Worker, fake_sendgrid: FakeSendGrid
) -> None:
    runtime, client = two_double_opt_in, api_client(two_double_opt_in)
    sign_up(client, runtime, worker, "quick")
    ttl = runtime.settings.confirmation_ttl
    expired = signed_at(runtime, -ttl - 60).sign_confirm(public_id(runtime), "quick")
    for response in (
        client.get(f"/confirm/quick/{expired}"),
        client.post(f"/confirm/quick/{expired}"),
    ):
        assert response.status_code == 410
        assert "expired" in response.text
    link = link_in(fake_sendgrid, 0, "confirm")
    for response in (client.get(link[:-3] + "xyz"), client.post(link[:-3] + "xyz")):
        assert response.status_code == 400
        assert "not valid" in response.text
    assert state(runtime)[1]["quick"] is EnrollmentStatus.PENDING
    assert timedelta(seconds=ttl) == timedelta(days=7)  # DRIP_CONFIRMATION_TTL's default
