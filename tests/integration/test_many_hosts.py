"""Many hosts against one PostgreSQL and one Redis: two `drip api`, two `drip scheduler` and two
`drip worker` processes, a burst of signups, a worker killed with SIGKILL mid-run; every email
is accepted by the provider exactly once, and no process holds more connections than its
documented pool allows."""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from sqlalchemy import func, select

from drip.config import Settings
from drip.db import create_db_engine, session_factory
from drip.models import Delivery, DeliveryStatus, ProviderEvent
from drip.pools import process_pool
from drip.testing.fake_sendgrid import FakeSendGrid
from tests.conftest import sendgrid_schema_dir, wait_for
from tests.integration.conftest import PG_ADMIN_URL, WEBHOOK_KEYS
from tests.integration.fleet import ConnectionSampler, Fleet, free_port, in_transaction

#: Subscribers signing up; the test sequence sends each three emails (5,001 in all).
SUBSCRIBERS = 1_667
#: Emails the provider must accept, each exactly once.
EMAILS = SUBSCRIBERS * 3
#: Threads of each worker process (`drip worker --processes 1 --threads 4`).
WORKER_THREADS = 4


def fleet_settings(settings: Settings, fake: FakeSendGrid, tmp_path: Path) -> Settings:
    """The test's settings with the leases of a run that must recover within a minute."""
    return settings.model_copy(
        update={
            "sendgrid_host": fake.url,
            "sendgrid_api_key": fake.api_key,
            "scheduler_interval": 0.2,
            # A lost message is enqueued again after 4 s. A row a killed worker left in
            # `sending` waits 30 s for the provider's `processed` event before it is sent
            # again. Under this load the events reach the API later and later (measured: 10 to
            # 20 s behind the emails a quarter to half way through, up to 57 s at the end), so
            # the worker is killed a quarter of the way, and a shorter lease would resend
            # emails the provider already accepted.
            "queue_lease": 4.0,
            "send_lease": 30.0,
            "ambiguous_wait": 6.0,
            "worker_metrics_port": 0,  # two workers on one host: no fixed metrics port
            "worker_threads": WORKER_THREADS,
            "state_dir": tmp_path / ".drip",
        }
    )


def sign_up(api_urls: list[str]) -> None:
    """Post every subscriber's signup, alternating between the APIs, eight at a time."""
    clients = [httpx.Client(base_url=url, timeout=30) for url in api_urls]

    def post(n: int) -> None:
        response = clients[n % len(clients)].post("/signups", json={"email": f"h{n}@example.com"})
        assert response.status_code == 202, response.text

    try:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(post, range(SUBSCRIBERS)))
    finally:
        for client in clients:
            client.close()


def test_two_of_each_process_with_a_worker_killed_send_every_email_exactly_once(
    settings: Settings, tmp_path: Path
) -> None:
    # Given a provider that posts a signed `processed` event for each email to the first API
    api_port = free_port()
    fake = FakeSendGrid(
        sendgrid_schema_dir() / "mail_send.schema.json",
        webhook_url=f"http://127.0.0.1:{api_port}/webhooks/sendgrid",
        signer=WEBHOOK_KEYS,
    ).start()
    fleet_config = fleet_settings(settings, fake, tmp_path)
    fleet = Fleet(fleet_config, tmp_path)
    engine = create_db_engine(settings.database_url, pool_size=2)
    sessions = session_factory(engine)
    database = settings.database_url.rsplit("/", 1)[1]

    def count(status: DeliveryStatus) -> int:
        with sessions() as session:
            query = select(func.count()).select_from(Delivery).where(Delivery.status == status)
            return session.scalar(query) or 0

    try:
        # And two schedulers, two workers and two APIs on one database and one Redis namespace
        with ConnectionSampler(PG_ADMIN_URL, database) as sampler:
            for n in (1, 2):
                fleet.start(f"scheduler-{n}", "scheduler")
                fleet.start(
                    f"worker-{n}", "worker", "--processes", "1", "--threads", str(WORKER_THREADS)
                )
            apis = [fleet.start_api("api-1", port=api_port), fleet.start_api("api-2")]
            started = time.monotonic()

            # When subscribers sign up through both APIs, and one worker is killed mid-run
            with ThreadPoolExecutor(1) as background:
                signups = background.submit(sign_up, apis)
                wait_for(
                    lambda: len(fake.accepted) >= EMAILS // 4 or signups.done(),
                    timeout=90,
                    what="a quarter of the emails",
                )
                # (inside a batch's transaction: some of its rows are `sending`, some of
                # them perhaps already accepted by the provider)
                wait_for(
                    lambda: in_transaction(PG_ADMIN_URL, database, "worker-1"),
                    timeout=30,
                    what="worker-1 in the middle of a batch",
                )
                fleet.kill("worker-1")
                killed_at = len(fake.accepted)
                with sessions() as session:
                    left_sending = set(
                        session.scalars(
                            select(Delivery.id).where(Delivery.status == DeliveryStatus.SENDING)
                        )
                    )
                signups.result()
            wait_for(
                lambda: count(DeliveryStatus.SENT) == EMAILS,
                timeout=100,
                what=f"{EMAILS} emails sent",
            )
            elapsed = time.monotonic() - started
        fleet.stop()

        # Then each email was accepted exactly once, by delivery id and by (subscriber, step)
        assert not fake.violations
        per_delivery = Counter(a.delivery_id for a in fake.accepted)
        duplicates = {d: n for d, n in per_delivery.items() if n > 1}
        assert not duplicates, f"sent more than once: {duplicates}"
        per_step = Counter(
            (a.payload["personalizations"][0]["to"][0]["email"], a.payload["custom_args"]["step"])
            for a in fake.accepted
        )
        assert len(per_step) == EMAILS
        assert set(per_step.values()) == {1}
        # And none was lost: every row is sent, once per (enrollment, step), and accepted
        with sessions() as session:
            rows = session.execute(
                select(Delivery.id, Delivery.enrollment_id, Delivery.step_id, Delivery.status)
            ).all()
        assert {row.status for row in rows} == {DeliveryStatus.SENT}
        assert len({(row.enrollment_id, row.step_id) for row in rows}) == len(rows) == EMAILS
        assert set(per_delivery) == {str(row.id) for row in rows}

        # And no process held more connections than its pool allows
        bounds = {
            "api": process_pool(fleet_config).most,
            "scheduler": process_pool(fleet_config).most,
            "worker": process_pool(
                fleet_config.model_copy(update={"worker_threads": WORKER_THREADS})
            ).most,
        }
        measured = {name: sampler.highest[name] for name in sorted(fleet.processes)}
        with sessions() as session:
            # occurred_at is the provider's whole second: this overstates by under a second.
            lag = func.max(ProviderEvent.received_at - ProviderEvent.occurred_at)
            processed = ProviderEvent.event == "processed"
            event_lag = session.scalar(select(lag).where(processed))
            lag_at_kill = session.scalar(
                select(lag).where(processed, ProviderEvent.delivery_id.in_(left_sending))
            )
        print(
            f"\n{EMAILS} emails in {elapsed:.1f}s, worker-1 killed at {killed_at} accepted "
            f"with {len(left_sending)} rows in sending; "
            f"most connections per process over {sampler.samples} samples: {measured}; "
            f"bounds: {bounds}; processed events stored up to {event_lag} after the email, "
            f"{lag_at_kill} for the rows left in sending"
        )
        for name, held in measured.items():
            assert 0 < held <= bounds[name.split("-")[0]], (name, held, bounds)
    finally:
        fleet.stop()
        fake.stop()
        engine.dispose()
