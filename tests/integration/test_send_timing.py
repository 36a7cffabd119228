"""When emails leave, end to end: a 429's retry waits for `X-RateLimit-Reset` with no
shared send rate configured, and step 1 of a signup that gives a time zone waits for the
send window in that zone, not in the sequence's."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import dramatiq
import pytest
from sqlalchemy import select

from drip.config import Settings
from drip.db import transaction, utcnow
from drip.models import Contact, Delivery, DeliveryStatus
from drip.runtime import QUEUES, Runtime, build_runtime
from drip.signup.request import SignupRequest
from drip.signup.service import enroll_contact
from drip.testing.fake_sendgrid import FakeSendGrid, Scripted
from tests.conftest import wait_for
from tests.integration.conftest import drain
from tests.integration.helpers import api_client, deliveries, running_scheduler

#: Zones far from UTC (5.5 to 9 hours); at any moment at least one is between 01:00 and 22:30.
FAR_ZONES = ("Asia/Tokyo", "America/Los_Angeles", "Asia/Kolkata")


def test_a_429_is_retried_no_sooner_than_its_reset_without_a_send_rate(
    settings: Settings, fake_sendgrid: FakeSendGrid
) -> None:
    # Given the default DRIP_SEND_RATE=0 (no shared throttle to hold the retry), a backoff
    # of 0.05-5 s, and a provider whose first answer is a 429 that resets in 1.5 s
    runtime = build_runtime(settings.model_copy(update={"send_max_backoff": 5.0}))
    assert runtime.settings.send_rate == 0
    worker = dramatiq.Worker(runtime.broker, worker_threads=2, queues=set(QUEUES))
    worker.start()
    try:
        reset_at = time.monotonic() + 1.5  # the same instant as the header's epoch seconds
        fake_sendgrid.script([Scripted(429, {"X-RateLimit-Reset": str(time.time() + 1.5)})])
        with transaction(runtime.sessions) as session:
            delivery_id = enroll_contact(
                session,
                SignupRequest(email="hal@example.com"),
                catalog=runtime.catalog,
                default_sequence="quick",
                now=utcnow(),
                queue_lease=30,
            ).delivery_to_enqueue
        assert delivery_id is not None
        # When it is sent
        runtime.enqueue([delivery_id])
        wait_for(lambda: fake_sendgrid.accepted_for(delivery_id), what="the retried email")
        row = wait_for(
            lambda: next(
                (
                    r
                    for r in deliveries(runtime)
                    if r.id == delivery_id and r.status.value == "sent"
                ),
                None,
            ),
            what="the row recorded as sent",
        )
    finally:
        worker.stop()
        runtime.close()
    # Then the retry reached the provider once, and not before the reset (an ignored reset
    # shows as a retry after the minimum backoff, a few hundredths of a second)
    assert [outcome for _, outcome in fake_sendgrid.log] == ["scripted 429", "accept"]
    _, retried = fake_sendgrid.arrivals
    assert retried >= reset_at - 0.05, f"retried {reset_at - retried:.2f}s before the reset"
    assert (row.status, row.attempts) == (DeliveryStatus.SENT, 2)


def _zone_in_daytime(now: datetime) -> ZoneInfo:
    """One of FAR_ZONES whose wall clock reads between 01:00 and 22:30 at `now`."""
    for name in FAR_ZONES:
        local = now.astimezone(ZoneInfo(name)).time()
        if local.hour >= 1 and (local.hour, local.minute) <= (22, 30):
            return ZoneInfo(name)
    raise AssertionError("one of three zones 5.5-9 hours apart is always in daytime")


@pytest.fixture
def windowed(settings: Settings, sequences_dir: Path) -> Iterator[tuple[Runtime, ZoneInfo]]:
    """A runtime whose sequence (zone UTC) has a 35-minute daily window open right now in a
    zone far from UTC, and therefore closed right now in UTC."""
    zone = _zone_in_daytime(datetime.now(UTC))
    local = datetime.now(zone)
    start, end = (local - timedelta(minutes=5)).time(), (local + timedelta(minutes=30)).time()
    quick = sequences_dir / "quick.yaml"
    window = f'send_window: {{start: "{start:%H:%M}", end: "{end:%H:%M}"}}\n'
    quick.write_text(quick.read_text().replace("timezone: UTC\n", "timezone: UTC\n" + window))
    rt = build_runtime(settings)
    yield rt, zone
    rt.close()


def test_a_signup_that_gives_a_zone_is_sent_in_that_zones_window(
    windowed: tuple[Runtime, ZoneInfo], fake_sendgrid: FakeSendGrid
) -> None:
    runtime, zone = windowed
    worker = dramatiq.Worker(runtime.broker, worker_threads=2, queues=set(QUEUES))
    worker.start()
    try:
        with running_scheduler(runtime):
            # Given two signups, one from someone in `zone` (where the window is open now)
            client = api_client(runtime)
            signed_up = utcnow()
            for body in (
                {"email": "ivy@example.com", "timezone": zone.key},
                {"email": "jon@example.com"},
            ):
                assert client.post("/signups", json=body).status_code == 202
            # Then the one who gave the zone gets email 1 now
            wait_for(lambda: fake_sendgrid.accepted, timeout=15, what="email 1 to ivy")
            drain(runtime, worker)
    finally:
        worker.stop()
    assert [a.payload["personalizations"][0]["to"][0]["email"] for a in fake_sendgrid.accepted] == [
        "ivy@example.com"
    ]
    # And the one who gave none waits for the window in the sequence's zone, UTC
    with runtime.sessions() as session:
        jon = session.scalars(
            select(Delivery).join(Contact).where(Contact.email == "jon@example.com")
        ).one()
    assert jon.status is DeliveryStatus.SCHEDULED
    window = runtime.catalog.get("quick").definition.send_window
    assert window is not None
    due = jon.due_at.astimezone(UTC)
    assert due > signed_up
    assert due.time() == window.start
    assert due - signed_up < timedelta(days=1)
