"""Outbound webhooks against a real receiver on loopback: real PostgreSQL, Redis, a Dramatiq
worker and the fake SendGrid. The receiver verifies every signature (with the
standardwebhooks library and with its own HMAC), fails on purpose and is restarted."""

from __future__ import annotations

import base64
import json
import shutil
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import dramatiq
import pytest
from sqlalchemy import select, update
from typer.testing import CliRunner

from drip.cli.main import app
from drip.clicks.recording import record_click
from drip.config import Settings
from drip.db import create_db_engine, session_factory, transaction, utcnow
from drip.keys.store import create_key
from drip.models import (
    AuditEntry,
    Contact,
    Delivery,
    WebhookAttempt,
    WebhookEndpoint,
    WebhookEvent,
    WebhookStatus,
)
from drip.runtime import QUEUES, Runtime, build_runtime
from drip.signup.confirm import confirm_enrollment
from drip.testing.fake_sendgrid import FakeSendGrid
from drip.unsubscribe.service import unsubscribe_contact
from drip.webhooks.delivery import WebhookSender
from drip.webhooks.events import EVENT_TYPES, Event, EventType
from drip.webhooks.history import list_deliveries
from drip.webhooks.outbox import emit
from drip.webhooks.recovery import take_due
from drip.webhooks.retries import RetryPolicy
from tests.conftest import TEST_SEQUENCES, wait_for
from tests.integration.helpers import api_client, running_scheduler
from tests.integration.test_processes import settings_env
from tests.integration.test_webhook import signed_post
from tests.integration.webhook_receiver import Receiver

SECRET = "whsec_" + base64.b64encode(b"the receiver's own secret, 32 b.").decode()
SECRET_ENV = "DRIP_WEBHOOK_TEST_SECRET"

#: A person's browser, as the click rule sees one.
BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 Safari/605.1.15"

#: Retries a test can watch: a fraction of a second apart instead of ten seconds and up.
FAST = RetryPolicy(base=timedelta(milliseconds=100), cap=timedelta(milliseconds=400))


@pytest.fixture
def sequences_dir(tmp_path: Path) -> Path:
    """The test sequence ending on `purchased`, and a double opt-in copy of it."""
    target = tmp_path / "sequences"
    shutil.copytree(TEST_SEQUENCES, target)
    quick = target / "quick.yaml"
    quick.write_text(
        quick.read_text().replace("steps:\n", "exit:\n  - {event: purchased}\nsteps:\n", 1)
    )
    (target / "confirmed.yaml").write_text(
        quick.read_text()
        .replace("id: quick", "id: confirmed", 1)
        .replace("timezone: UTC", "timezone: UTC\ndouble_opt_in: true", 1)
    )
    return target


@pytest.fixture
def receiver(sequences_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    """A receiver hearing every event type, declared in webhooks.yaml."""
    monkeypatch.setenv(SECRET_ENV, SECRET)
    hearing = Receiver(SECRET).start()
    (sequences_dir / "webhooks.yaml").write_text(
        "endpoints:\n"
        f"  - url: {hearing.url}\n"
        f"    events: [{', '.join(EVENT_TYPES)}]\n"
        f"    secret_env: {SECRET_ENV}\n"
    )
    yield hearing
    hearing.released.set()
    hearing.stop()


@pytest.fixture
def hooked(receiver: Receiver, settings: Settings) -> Iterator[Runtime]:
    """The runtime, built after webhooks.yaml is written, retrying fast."""
    runtime = build_runtime(settings)
    assert runtime.webhook_pool is not None
    runtime.webhook_pool.sender.retry = FAST
    yield runtime
    runtime.close()


@pytest.fixture
def hooked_worker(hooked: Runtime) -> Iterator[dramatiq.Worker]:
    worker = dramatiq.Worker(hooked.broker, worker_threads=4, worker_timeout=50, queues=set(QUEUES))
    worker.start()
    yield worker
    worker.stop(timeout=5_000)


def pump(runtime: Runtime) -> int:
    """Run the recovery job's take once, as the scheduler does every few seconds."""
    with transaction(runtime.sessions) as session:
        ids = take_due(session, now=utcnow(), limit=500)
    if ids:
        runtime.enqueue_webhooks(ids)
    return len(ids)


def post_as_sendgrid(runtime: Runtime, event: dict[str, object]) -> None:
    """Post one provider event; a 503 (the database busy) is retried, as SendGrid does."""
    wait_for(
        lambda: signed_post(runtime, [event]).status_code == 200,
        what=f"SendGrid's {event['event']} event stored",
    )


def outbox(runtime: Runtime) -> list[WebhookEvent]:
    with runtime.sessions() as session:
        return list(session.scalars(select(WebhookEvent).order_by(WebhookEvent.id)))


def public_id(runtime: Runtime, email: str) -> str:
    with runtime.sessions() as session:
        return session.scalars(select(Contact.public_id).where(Contact.email == email)).one()


def test_every_event_type_reaches_the_receiver_signed(
    hooked: Runtime,
    hooked_worker: dramatiq.Worker,
    receiver: Receiver,
    fake_sendgrid: FakeSendGrid,
) -> None:
    runtime, client = hooked, api_client(hooked)
    with running_scheduler(runtime):
        # A subscriber gets the three emails: subscribed, sent (x3), completed
        assert client.post("/signups", json={"email": "ann@example.com"}).status_code == 202
        wait_for(lambda: len(fake_sendgrid.accepted) == 3, timeout=20, what="ann's three emails")
        ann_first = fake_sendgrid.accepted[0]
        # SendGrid reports email 1 delivered
        delivered = {
            "email": "ann@example.com",
            "event": "delivered",
            "sg_event_id": "d-ann",
            "timestamp": 1_700_000_001,
            "delivery_id": ann_first.delivery_id,
        }
        post_as_sendgrid(runtime, delivered)
        # Ann follows a link in email 1 (a person: a browser, a minute after it arrived)
        with transaction(runtime.sessions) as session:
            session.execute(
                update(Delivery)
                .where(Delivery.id == int(ann_first.delivery_id))
                .values(sent_at=utcnow() - timedelta(minutes=1))
            )
            assert record_click(
                session,
                delivery_id=int(ann_first.delivery_id),
                link_index=0,
                url="https://example.com/guide?utm_source=drip&who=ann@example.com#top",
                method="GET",
                user_agent=BROWSER,
                now=utcnow(),
            ).human
        # A second subscriber's email bounces: bounced, suppressed
        assert client.post("/signups", json={"email": "bea@example.com"}).status_code == 202
        wait_for(lambda: len(fake_sendgrid.accepted) == 4, what="bea's email 1")
        bounce = {
            "email": "bea@example.com",
            "event": "bounce",
            "type": "bounce",
            "reason": "550 5.1.1 <bea@example.com> no such user",
            "sg_event_id": "b-bea",
            "timestamp": 1_700_000_002,
            "delivery_id": fake_sendgrid.accepted[3].delivery_id,
        }
        post_as_sendgrid(runtime, bounce)
        # A third unsubscribes by the link
        assert client.post("/signups", json={"email": "cy@example.com"}).status_code == 202
        with transaction(runtime.sessions) as session:
            cy = public_id(runtime, "cy@example.com")
            assert unsubscribe_contact(session, cy, reason="unsubscribe link", now=utcnow())
        # A fourth confirms a double opt-in signup
        signup = {"email": "dee@example.com", "sequence": "confirmed"}
        assert client.post("/signups", json=signup).status_code == 202
        with transaction(runtime.sessions) as session:
            assert confirm_enrollment(
                session,
                public_id=public_id(runtime, "dee@example.com"),
                sequence=runtime.catalog.get("confirmed").definition,
                issued_at=utcnow(),
                now=utcnow(),
                queue_lease=30,
            ).confirmed
        # A fifth buys: the run converts
        assert client.post("/signups", json={"email": "eve@example.com"}).status_code == 202
        with transaction(runtime.sessions) as session:
            _, key = create_key(session, "shop", "events:write", operator="test", now=utcnow())
        purchase = {"email": "eve@example.com", "name": "purchased", "id": "order-1"}
        headers = {"Authorization": f"Bearer {key.token}"}
        assert client.post("/v1/events", json=purchase, headers=headers).status_code == 202

        expected = set(EVENT_TYPES)
        wait_for(
            lambda: expected <= {r.event_type for r in receiver.accepted()},
            timeout=30,
            what=f"every event type at the receiver: {sorted(expected)}",
        )

    received = receiver.accepted()
    assert all(r.library_verified and r.hmac_verified for r in received)
    by_type = {r.event_type: r for r in received}
    for event_type in sorted(by_type):
        r = by_type[event_type]
        print(f"{r.event_type} {r.event_id} {r.signature} verified=library+hmac")
    # Only contact.* events carry the address; a bounce's provider text never leaves
    subscribed = {
        r.body["data"]["contact"]["email"] for r in received if r.event_type == "contact.subscribed"
    }
    assert {"ann@example.com", "bea@example.com", "eve@example.com"} <= subscribed
    assert "email" not in by_type["email.sent"].body["data"]["contact"]
    assert by_type["contact.suppressed"].body["data"]["reason"] == "bounce"
    assert "bea@example.com" not in str(by_type["email.bounced"].body)
    assert by_type["enrollment.converted"].body["data"]["goal"] == "purchased"
    assert by_type["email.clicked"].body["data"]["url"] == "https://example.com/guide"
    sent_ids = [r.event_id for r in received if r.event_type == "email.sent"]
    assert len(set(sent_ids)) >= 4
    # The outbox holds each event once per endpoint, and each is delivered
    wait_for(
        lambda: (
            pump(runtime) >= 0 and all(r.status is WebhookStatus.DELIVERED for r in outbox(runtime))
        ),
        what="every outbox row delivered",
    )
    rows = outbox(runtime)
    assert len({r.event_id for r in rows}) == len(rows)
    assert {r.event_id for r in rows} <= {r.event_id for r in receiver.accepted()}


def test_a_failing_receiver_is_retried_with_backoff_and_one_answering_410_is_disabled(
    hooked: Runtime, hooked_worker: dramatiq.Worker, receiver: Receiver
) -> None:
    runtime, client = hooked, api_client(hooked)
    # Given a receiver answering 500
    receiver.answer = 500
    assert client.post("/signups", json={"email": "fay@example.com"}).status_code == 202
    wait_for(lambda: len(receiver.received) >= 2, what="two failed attempts")

    def attempts() -> int:
        pump(runtime)
        return sum(r.attempts for r in outbox(runtime))

    wait_for(lambda: attempts() >= 4, what="retries")
    # When it recovers, the next retry delivers, with the same event id every time
    receiver.answer = 200
    wait_for(
        lambda: (
            pump(runtime) >= 0 and all(r.status is WebhookStatus.DELIVERED for r in outbox(runtime))
        ),
        what="delivery after the receiver recovered",
    )
    rows = outbox(runtime)
    for row in rows:
        ids = {r.event_id for r in receiver.received if r.event_id == row.event_id}
        assert ids == {row.event_id}
    assert max(r.attempts for r in rows) >= 2
    with runtime.sessions() as session:
        codes = set(session.scalars(select(WebhookAttempt.status_code)))
    assert codes == {500, 200}

    # When the receiver answers 410, its endpoint is disabled and nothing more is sent to it
    receiver.answer = 410
    assert client.post("/signups", json={"email": "gus@example.com"}).status_code == 202

    def disabled() -> bool:
        pump(runtime)
        with runtime.sessions() as session:
            return not session.scalars(select(WebhookEndpoint.enabled)).one()

    wait_for(disabled, what="the endpoint disabled by a 410")
    failed = {r.event_id for r in outbox(runtime) if r.status is WebhookStatus.FAILED}
    assert failed
    with runtime.sessions() as session:
        shown = list_deliveries(session, failed_only=True, limit=50)
    assert {v.event_id for v in shown} == failed
    seen = len(receiver.received)
    assert client.post("/signups", json={"email": "hal@example.com"}).status_code == 202
    time_to_notice = utcnow() + timedelta(seconds=1)
    wait_for(lambda: utcnow() > time_to_notice and pump(runtime) == 0, what="a quiet second")
    assert len(receiver.received) == seen
    assert {r.event_id for r in outbox(runtime)} == {r.event_id for r in outbox(runtime)}


def test_a_receiver_restarted_gets_every_event_at_least_once(
    hooked: Runtime, hooked_worker: dramatiq.Worker, receiver: Receiver
) -> None:
    runtime, client = hooked, api_client(hooked)
    # Given the receiver is down while ten people sign up (and get email 1)
    receiver.stop()
    for n in range(10):
        assert client.post("/signups", json={"email": f"p{n}@example.com"}).status_code == 202

    def failed_attempts() -> int:
        pump(runtime)
        return sum(r.attempts for r in outbox(runtime))

    wait_for(lambda: failed_attempts() >= 30, timeout=30, what="attempts refused while down")
    assert all(r.status is WebhookStatus.PENDING for r in outbox(runtime))
    with runtime.sessions() as session:
        errors = set(session.scalars(select(WebhookAttempt.error)))
    assert all(e and "ConnectError" in e for e in errors), errors

    # When it starts again on the same port
    receiver.start()

    def all_delivered() -> bool:
        pump(runtime)
        return all(r.status is WebhookStatus.DELIVERED for r in outbox(runtime))

    wait_for(all_delivered, timeout=30, what="every piled-up event delivered")
    # Then every event arrived, at least once, each under its one id
    rows = outbox(runtime)
    assert len(rows) >= 20  # ten subscribed, ten sent at least
    arrived = {r.event_id for r in receiver.accepted()}
    assert arrived == {r.event_id for r in rows}
    assert all(r.library_verified and r.hmac_verified for r in receiver.received)


def test_a_hanging_receiver_never_delays_an_email(
    hooked: Runtime,
    hooked_worker: dramatiq.Worker,
    receiver: Receiver,
    fake_sendgrid: FakeSendGrid,
) -> None:
    _runtime, client = hooked, api_client(hooked)
    # Given a receiver that holds every request open, and events enough to fill every
    # sender thread with an attempt that waits for its read timeout
    receiver.hang.set()
    for n in range(4):
        assert client.post("/signups", json={"email": f"w{n}@example.com"}).status_code == 202
    wait_for(lambda: receiver.hanging >= 4, what="four attempts held by the receiver")
    wait_for(lambda: len(fake_sendgrid.accepted) == 4, what="the first four emails")

    # When someone signs up
    started = time.monotonic()
    assert client.post("/signups", json={"email": "late@example.com"}).status_code == 202

    # Then the email reaches SendGrid while the receiver is still holding every attempt
    wait_for(lambda: len(fake_sendgrid.accepted) == 5, timeout=5, what="the fifth email")
    elapsed = time.monotonic() - started
    assert receiver.hanging >= 4
    assert elapsed < 2.0, f"the email took {elapsed:.2f}s behind a hanging receiver"
    receiver.released.set()


def test_a_receiver_past_the_read_timeout_is_an_attempt_to_retry(
    hooked: Runtime, receiver: Receiver
) -> None:
    runtime = hooked
    # Given a sender with a short read timeout and a receiver that hangs
    sender = WebhookSender(runtime.sessions, read_timeout=0.3, retry=FAST)
    receiver.hang.set()
    assert api_client(runtime).post("/signups", json={"email": "tim@example.com"}).status_code
    row = wait_for(lambda: outbox(runtime), what="the subscribed event")[0]
    # When one attempt is made, it times out and is kept for a retry
    assert sender.deliver(row.id).value == "retry"
    sender.close()
    receiver.released.set()
    again = outbox(runtime)[0]
    assert again.status is WebhookStatus.PENDING
    assert again.last_error is not None
    assert "ReadTimeout" in again.last_error
    assert again.next_attempt_at > again.created_at


def test_the_webhooks_commands_add_list_show_replay_and_remove_audited(settings: Settings) -> None:
    cli, env = CliRunner(), settings_env(settings)
    # A bad endpoint is refused, naming each bad argument
    bad = cli.invoke(
        app,
        [
            *("webhooks", "add", "http://crm.example.com/h"),
            *("--events", "email.opened", "--secret-env", "9X"),
        ],
        env=env,
    )
    assert bad.exit_code == 2
    assert "url" in bad.output
    assert "--events" in bad.output
    assert "--secret-env" in bad.output
    # A good one is added and listed (http to loopback: this is development)
    url = "http://127.0.0.1:9/hooks"
    added = cli.invoke(
        app,
        [
            *("webhooks", "add", url, "--events", "email.sent,contact.subscribed"),
            *("--secret-env", SECRET_ENV, "--by", "ann"),
        ],
        env=env,
    )
    assert added.exit_code == 0, added.output
    listed = json.loads(cli.invoke(app, ["webhooks", "list", "--json"], env=env).stdout)
    assert [(e["url"], e["events"], e["enabled"]) for e in listed] == [
        (url, ["contact.subscribed", "email.sent"], True)
    ]
    # A failed delivery is shown with --failed and replayed by --since
    engine = create_db_engine(settings.database_url, pool_size=1)
    sessions = session_factory(engine)
    with transaction(sessions) as session:
        emit(
            session,
            [Event(EventType.EMAIL_SENT, None, utcnow(), {"step": "welcome"})],
            now=utcnow(),
        )
    with transaction(sessions) as session:
        row = session.scalars(select(WebhookEvent)).one()
        row.status = WebhookStatus.FAILED
    shown = cli.invoke(app, ["webhooks", "deliveries", "--failed", "--json"], env=env)
    assert [d["event_id"] for d in json.loads(shown.stdout)] == [row.event_id]
    both = cli.invoke(app, ["webhooks", "replay", row.event_id, "--since", "2h"], env=env)
    assert both.exit_code == 2
    replayed = cli.invoke(app, ["webhooks", "replay", "--since", "2h", "--by", "ann"], env=env)
    assert replayed.exit_code == 0, replayed.output
    assert "1 deliveries due again" in replayed.output
    with sessions() as session:
        assert session.get_one(WebhookEvent, row.id).status is WebhookStatus.PENDING
    # Removed: disabled, its pending event failed, every write audited
    removed = cli.invoke(app, ["webhooks", "remove", url, "--by", "ann"], env=env)
    assert removed.exit_code == 0, removed.output
    listed = json.loads(cli.invoke(app, ["webhooks", "list", "--json"], env=env).stdout)
    assert listed[0]["enabled"] is False
    with sessions() as session:
        assert session.get_one(WebhookEvent, row.id).status is WebhookStatus.FAILED
        audit = list(session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))
    engine.dispose()
    assert audit == ["webhooks.add", "webhooks.replay", "webhooks.remove"]
