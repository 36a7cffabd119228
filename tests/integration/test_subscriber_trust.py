"""Subscriber trust: confirmation flows, unsubscribe choices, no email after an unsubscribe,
rate limits, and a contact's data on request."""

from __future__ import annotations

import re
import threading
import time
from datetime import timedelta
from pathlib import Path

import dramatiq
import pytest
from sqlalchemy import select, text
from typer.testing import CliRunner

from drip.cli.main import app
from drip.config import Settings
from drip.db import transaction, utcnow
from drip.errors import AmbiguousSendError
from drip.models import (
    Contact,
    ContactStatus,
    Delivery,
    DeliveryStatus,
    Enrollment,
    EnrollmentStatus,
)
from drip.runtime import QUEUES, Runtime, build_runtime, build_transport
from drip.send.message import OutgoingEmail
from drip.send.transports.base import Transport
from drip.sequences.catalog import SequenceCatalog
from drip.testing.fake_sendgrid import FakeSendGrid
from drip.testing.threads import CheckedThread, run_concurrently
from tests.conftest import wait_for
from tests.integration.conftest import drain
from tests.integration.helpers import api_client, deliveries, running_scheduler
from tests.integration.test_processes import settings_env


def steps_received(fake: FakeSendGrid) -> list[str]:
    return [a.payload["custom_args"]["step"] for a in fake.accepted]


def link_in(fake: FakeSendGrid, index: int, path: str) -> str:
    html = fake.accepted[index].payload["content"][1]["value"]
    match = re.search(rf'href="(https://drip\.test/{path}/[^"]+)"', html)
    assert match is not None, f"no /{path}/ link in email {index}"
    return match.group(1).replace("&amp;", "&")


@pytest.fixture
def double_opt_in(runtime: Runtime, sequences_dir: Path) -> Runtime:
    path = sequences_dir / "quick.yaml"
    path.write_text(path.read_text().replace("timezone: UTC", "timezone: UTC\ndouble_opt_in: true"))
    runtime.catalog = runtime.sender.catalog = SequenceCatalog.load(
        sequences_dir, postal_address="x"
    )
    return runtime


def test_double_opt_in_sends_one_confirmation_then_the_sequence_after_the_click(
    double_opt_in: Runtime, worker: dramatiq.Worker, fake_sendgrid: FakeSendGrid
) -> None:
    runtime, client = double_opt_in, api_client(double_opt_in)
    with running_scheduler(runtime) as ticking:
        # Given a signup to a double opt-in sequence (signed up twice, impatiently)
        client.post("/signups", json={"email": "ola@example.com"})
        client.post("/signups", json={"email": "ola@example.com"})
        ticking.wait_past_every_due_row(runtime)
        drain(runtime, worker)
        # Then exactly one confirmation email went out, and nothing of the sequence
        assert steps_received(fake_sendgrid) == ["_confirm"]
        confirm = link_in(fake_sendgrid, 0, "confirm")
        # A link scanner's GET confirms nothing
        assert "Yes, send it to me" in client.get(confirm).text
        ticking.wait_past_every_due_row(runtime)
        drain(runtime, worker)
        assert steps_received(fake_sendgrid) == ["_confirm"]
        # When the subscriber presses the button
        assert "you are confirmed" in client.post(confirm).text
        wait_for(lambda: len(fake_sendgrid.accepted) >= 2, what="email 1 after confirmation")
        assert steps_received(fake_sendgrid)[1] == "welcome"
        # And pressing it again changes nothing: the rest of the series follows once
        assert client.post(confirm).status_code == 200
        wait_for(lambda: len(fake_sendgrid.accepted) >= 4, timeout=15, what="emails 2 and 3")
        ticking.wait_past_every_due_row(runtime)
        drain(runtime, worker)
    assert steps_received(fake_sendgrid) == ["_confirm", "welcome", "second", "third"]


def test_unconfirmed_signups_expire_and_leave_no_contact(
    double_opt_in: Runtime, worker: dramatiq.Worker, fake_sendgrid: FakeSendGrid
) -> None:
    api_client(double_opt_in).post("/signups", json={"email": "pat@example.com"})
    drain(double_opt_in, worker)
    confirm = link_in(fake_sendgrid, 0, "confirm")
    scheduler = double_opt_in.scheduler()
    scheduler.clock = lambda: utcnow() + timedelta(days=8)
    assert scheduler.tick().confirmations_expired == 1
    with double_opt_in.sessions() as session:
        assert session.scalars(select(Contact)).all() == []
    assert api_client(double_opt_in).post(confirm).status_code == 410


def test_a_returning_subscriber_is_only_re_enrolled_through_confirmation(
    runtime: Runtime, worker: dramatiq.Worker, fake_sendgrid: FakeSendGrid
) -> None:
    client = api_client(runtime)
    client.post("/signups", json={"email": "quinn@example.com"})
    wait_for(lambda: fake_sendgrid.accepted, what="email 1")
    unsubscribe = fake_sendgrid.accepted[0].payload["headers"]["List-Unsubscribe"].strip("<>")
    client.post(unsubscribe, data={"List-Unsubscribe": "One-Click"})
    # When they sign up again, the answer is the usual one
    again = client.post("/signups", json={"email": "quinn@example.com"})
    assert again.status_code == 202
    drain(runtime, worker)
    # Then they get a confirmation request, not the sequence
    assert steps_received(fake_sendgrid) == ["welcome", "_confirm"]
    with runtime.sessions() as session:
        assert session.scalars(select(Contact.status)).one() is ContactStatus.UNSUBSCRIBED
    # And once confirmed: email 1 again (marked as a resend, it carries the template), then the rest
    client.post(link_in(fake_sendgrid, 1, "confirm"))
    with running_scheduler(runtime):
        wait_for(lambda: len(fake_sendgrid.accepted) >= 4, timeout=15, what="emails 1 and 2")
        drain(runtime, worker)
    assert steps_received(fake_sendgrid)[2:4] == ["welcome", "second"]
    resent = [r for r in deliveries(runtime) if r.step_id == "welcome" and r.resend]
    assert len(resent) == 1


def test_the_unsubscribe_page_offers_one_sequence_or_everything(
    runtime: Runtime, worker: dramatiq.Worker, fake_sendgrid: FakeSendGrid
) -> None:
    client = api_client(runtime)
    client.post("/signups", json={"email": "rae@example.com"})
    wait_for(lambda: fake_sendgrid.accepted, what="email 1")
    footer = link_in(fake_sendgrid, 0, "unsubscribe")
    assert footer.endswith("?sequence=quick")
    page = client.get(footer)
    assert page.status_code == 200
    assert "Stop “A three-step sequence with second-scale delays”" in page.text
    assert "Stop every email from us" in page.text
    # Leaving this sequence only: the contact stays subscribed
    done = client.post(footer, data={"scope": "sequence", "sequence": "quick"})
    assert done.status_code == 200
    assert "unsubscribed from “A three-step" in done.text
    # (a scheduler runs past the time email 2 was due, so it would be sent if it could be)
    with running_scheduler(runtime) as ticking:
        ticking.wait_past_every_due_row(runtime)
        drain(runtime, worker)
    with runtime.sessions() as session:
        assert session.scalars(select(Contact.status)).one() is ContactStatus.ACTIVE
        assert session.scalars(select(Enrollment.status)).one() is EnrollmentStatus.CANCELLED
    assert "second" not in steps_received(fake_sendgrid)


@pytest.mark.parametrize("token", ["not-a-token", "InRvdGFsbHktZmFrZSI.abc", ""])
def test_a_bad_unsubscribe_token_gets_a_400_page_and_no_hint(runtime: Runtime, token: str) -> None:
    client = api_client(runtime)
    for response in (client.get(f"/unsubscribe/{token}x"), client.post(f"/unsubscribe/{token}x")):
        assert response.status_code == 400
        assert "This link is not valid" in response.text
        assert "example.com" not in response.text


def test_no_email_leaves_after_an_unsubscribe_is_acknowledged_even_under_concurrency(
    runtime: Runtime, fake_sendgrid: FakeSendGrid
) -> None:
    # Given 60 subscribers whose email 1 is queued, and eight worker threads sending
    client = api_client(runtime)
    with transaction(runtime.sessions) as session:
        from drip.signup.request import SignupRequest
        from drip.signup.service import enroll_contact

        ids = [
            enroll_contact(
                session,
                SignupRequest(email=f"u{n}@example.com"),
                catalog=runtime.catalog,
                default_sequence="quick",
                now=utcnow(),
                queue_lease=60,
            ).delivery_to_enqueue
            for n in range(60)
        ]
        tokens = {
            c.email: runtime.signer.sign(c.public_id) for c in session.scalars(select(Contact))
        }
    acknowledged: dict[str, float] = {}
    workers = dramatiq.Worker(runtime.broker, worker_threads=8, worker_timeout=20)
    workers.start()
    try:
        runtime.enqueue([i for i in ids if i is not None])

        # When every subscriber unsubscribes while the workers are sending
        def unsubscribe(email: str) -> None:
            response = client.post(
                f"/unsubscribe/{tokens[email]}", data={"List-Unsubscribe": "One-Click"}
            )
            assert response.status_code == 200
            acknowledged[email] = time.monotonic()

        run_concurrently(unsubscribe, [(email,) for email in tokens])
        drain(runtime, workers)
    finally:
        workers.stop()
    # Then no email reached the provider after its recipient's acknowledgement
    late = [
        a
        for a in fake_sendgrid.accepted
        if a.at > acknowledged[a.payload["personalizations"][0]["to"][0]["email"]]
    ]
    assert late == []
    assert all(
        r.status in (DeliveryStatus.SENT, DeliveryStatus.CANCELLED) for r in deliveries(runtime)
    )
    assert len([r for r in deliveries(runtime) if r.step_id == "second"]) <= len(
        fake_sendgrid.accepted
    )


class HeldTransport:
    """The real SendGrid transport, holding every send at its start until `release()`: a
    send in flight, past its send-time checks, for as long as the test needs."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        #: Set once a send is being held.
        self.holding = threading.Event()
        self._released = threading.Event()

    def send(self, email: OutgoingEmail) -> str:
        """Wait for `release()`, then send through the real transport."""
        self.holding.set()
        if not self._released.wait(timeout=30):
            raise AmbiguousSendError("the test never released the send")
        return self.inner.send(email)

    def release(self) -> None:
        """Let every held and later send through."""
        self._released.set()

    def close(self) -> None:
        """Close the real transport."""
        self.inner.close()


def _waiting_for_a_lock(runtime: Runtime) -> bool:
    """Whether a session of this test's database is waiting for a row lock."""
    with runtime.engine.connect() as connection:
        return bool(
            connection.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            )
        )


@pytest.mark.parametrize(
    ("scope", "answer", "afterwards"),
    [
        ("sequence", "unsubscribed from", ContactStatus.ACTIVE),  # still subscribed to others
        ("all", "You are unsubscribed.", ContactStatus.UNSUBSCRIBED),
    ],
)
def test_no_email_leaves_after_an_unsubscribe_is_acknowledged_mid_send(
    settings: Settings,
    fake_sendgrid: FakeSendGrid,
    scope: str,
    answer: str,
    afterwards: ContactStatus,
) -> None:
    # Given a subscriber whose email 1 is in flight: past the send-time checks (their row
    # locked for share), held just before the request
    held = HeldTransport(build_transport(settings))
    runtime = build_runtime(settings, transport=held)
    worker = dramatiq.Worker(runtime.broker, worker_threads=2, queues=set(QUEUES))
    worker.start()
    acknowledged: list[float] = []
    try:
        client = api_client(runtime)
        assert client.post("/signups", json={"email": "kim@example.com"}).status_code == 202
        wait_for(held.holding.is_set, what="email 1 in flight")
        with runtime.sessions() as session:
            token = runtime.signer.sign(session.scalars(select(Contact.public_id)).one())

        # When they leave the sequence (or everything) from the page while it is in flight
        def leave() -> None:
            response = client.post(
                f"/unsubscribe/{token}?sequence=quick",
                data={"scope": scope, "sequence": "quick"},
            )
            assert response.status_code == 200
            assert answer in response.text
            acknowledged.append(time.monotonic())

        leaving = CheckedThread(leave, name="leave")
        leaving.start()
        # (leaving waits for the send's lock on the contact, or has already answered)
        wait_for(
            lambda: acknowledged or _waiting_for_a_lock(runtime), what="leave to wait or answer"
        )
        held.release()
        leaving.join(timeout=20)
        # And the scheduler and worker run past the time every later step was due
        with running_scheduler(runtime) as ticking:
            ticking.wait_past_every_due_row(runtime)
            drain(runtime, worker)
    finally:
        held.release()
        worker.stop()
        runtime.close()
    # Then the email in flight reached the provider before the answer, and nothing after it
    (acked,) = acknowledged
    assert steps_received(fake_sendgrid) == ["welcome"]
    late = [a.payload["custom_args"]["step"] for a in fake_sendgrid.accepted if a.at > acked]
    assert late == [], "sent after the unsubscribe was acknowledged"
    with runtime.sessions() as session:
        contact = session.scalars(select(Contact)).one()
        assert contact.status is afterwards
        assert session.scalars(select(Enrollment.status)).one() is EnrollmentStatus.CANCELLED
    assert {r.step_id: r.status for r in deliveries(runtime)} == {
        "welcome": DeliveryStatus.SENT,
        "second": DeliveryStatus.CANCELLED,
    }


def test_signups_are_rate_limited_per_ip_and_per_address(settings: Settings) -> None:
    rt = build_runtime(
        settings.model_copy(
            update={"signup_rate_per_ip": "4/minute", "signup_rate_per_address": "2/hour"}
        )
    )
    try:
        client = api_client(rt)
        by_address = [
            client.post("/signups", json={"email": "sam@example.com"}).status_code for _ in range(3)
        ]
        assert by_address == [202, 202, 429]
        by_ip = client.post("/signups", json={"email": "tom@example.com"})
        assert by_ip.status_code == 202
        limited = client.post("/signups", json={"email": "uma@example.com"})
        assert limited.status_code == 429
        assert 1 <= int(limited.headers["Retry-After"]) <= 60
    finally:
        rt.close()


def test_the_honeypot_is_answered_as_usual_and_does_nothing(runtime: Runtime) -> None:
    response = api_client(runtime).post(
        "/signups", data={"email": "bot@example.com", "website": "http://spam"}
    )
    assert response.status_code == 202
    with runtime.sessions() as session:
        assert session.scalars(select(Contact)).all() == []


def test_line_breaks_in_a_name_never_reach_a_header(
    runtime: Runtime, worker: dramatiq.Worker, fake_sendgrid: FakeSendGrid
) -> None:
    # A name is letters, marks, spaces, apostrophes, hyphens and periods: the signup is refused
    # (the renderer's own header cleaning is tested in tests/unit/test_rendering.py)
    response = api_client(runtime).post(
        "/signups", json={"email": "vic@example.com", "first_name": "Vic\r\nBcc: x@evil.test"}
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "first_name"]
    drain(runtime, worker)
    assert fake_sendgrid.accepted == []


def test_list_unsubscribe_carries_a_mailto_when_configured(
    settings: Settings, fake_sendgrid: FakeSendGrid
) -> None:
    rt = build_runtime(
        settings.model_copy(update={"unsubscribe_mailto": "unsubscribe@example.com"})
    )
    try:
        api_client(rt).post("/signups", json={"email": "wes@example.com"})
        # No worker runs here: step 1 waits queued, and the state machine sends it directly.
        (first,) = deliveries(rt)
        assert first.status is DeliveryStatus.QUEUED
        assert rt.sender.send(first.id).outcome.value == "sent"
    finally:
        rt.close()
    header = fake_sendgrid.accepted[0].payload["headers"]["List-Unsubscribe"]
    assert header.startswith("<https://drip.test/unsubscribe/")
    assert header.endswith(", <mailto:unsubscribe@example.com?subject=unsubscribe>")


def test_export_prints_everything_and_forget_leaves_only_a_hash(
    runtime: Runtime, worker: dramatiq.Worker, fake_sendgrid: FakeSendGrid, settings: Settings
) -> None:
    api_client(runtime).post("/signups", json={"email": "xia@example.com", "first_name": "Xia"})
    wait_for(lambda: fake_sendgrid.accepted, what="email 1")
    drain(runtime, worker)
    cli, env = CliRunner(), settings_env(settings)
    exported = cli.invoke(app, ["contacts", "export", "XIA@example.com"], env=env)
    assert exported.exit_code == 0, exported.output
    assert '"email": "xia@example.com"' in exported.output
    assert '"step_id": "welcome"' in exported.output
    forgotten = cli.invoke(
        app,
        ["contacts", "forget", "xia@example.com", "--reason", "GDPR request", "--by", "ops"],
        env=env,
    )
    assert forgotten.exit_code == 0, forgotten.output
    with runtime.sessions() as session:
        contact = session.scalars(select(Contact)).one()
        assert (contact.email, contact.first_name, contact.status) == (
            None,
            None,
            ContactStatus.FORGOTTEN,
        )
        assert len(contact.email_hash) == 64
        assert session.scalars(
            select(Delivery.status).where(Delivery.step_id == "second")
        ).one() is (DeliveryStatus.CANCELLED)
    # The address is never mailed again unless it signs up and confirms
    api_client(runtime).post("/signups", json={"email": "xia@example.com"})
    with running_scheduler(runtime) as ticking:
        ticking.wait_past_every_due_row(runtime)
        drain(runtime, worker)
    assert steps_received(fake_sendgrid) == ["welcome", "_confirm"]
