"""Degraded modes: PostgreSQL down, a shared send rate, a 429 pausing every worker."""

from __future__ import annotations

import time

import dramatiq
from sqlalchemy import select
from structlog.testing import capture_logs

from drip.config import Settings
from drip.db import transaction, utcnow
from drip.models import Contact
from drip.runtime import QUEUES, Runtime, build_runtime
from drip.signup.request import SignupRequest
from drip.signup.service import enroll_contact
from drip.testing.fake_sendgrid import FakeSendGrid, Scripted
from tests.conftest import wait_for
from tests.integration.helpers import api_client


def test_with_postgresql_down_the_api_answers_503_with_a_clear_body(
    settings: Settings, runtime: Runtime
) -> None:
    down = build_runtime(
        settings.model_copy(update={"database_url": "postgresql://postgres@127.0.0.1:1/none"})
    )
    try:
        client = api_client(down)
        response = client.post("/signups", json={"email": "pg@example.com"})
        assert response.status_code == 503
        assert response.json() == {
            "detail": "the database is unavailable; nothing was changed, try again shortly"
        }
        assert response.headers["Retry-After"] == "5"
        health = client.get("/healthz")
        assert health.status_code == 503
        assert health.json()["checks"]["database"] == "down"
        assert health.json()["checks"]["redis"] == "ok"
        # The reason (host, port, driver text) goes to the log, not to the public answer
        assert "127.0.0.1" not in health.text
        assert "connect" not in health.text.lower()
    finally:
        down.close()
    with runtime.sessions() as session:
        assert session.scalars(select(Contact)).all() == []


def test_with_redis_down_healthz_says_down_and_logs_the_reason(settings: Settings) -> None:
    down = build_runtime(settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"}))
    try:
        with capture_logs() as logs:
            health = api_client(down).get("/healthz")
    finally:
        down.close()
    assert health.status_code == 503
    assert health.json()["checks"]["redis"] == "down"
    assert "Error" not in health.text
    assert ":1" not in health.text
    (logged,) = [e for e in logs if e["event"] == "healthz.redis_down"]
    assert "127.0.0.1:1" in logged["error"]


def _queue_many(runtime: Runtime, count: int) -> list[int]:
    with transaction(runtime.sessions) as session:
        return [
            d
            for n in range(count)
            if (
                d := enroll_contact(
                    session,
                    SignupRequest(email=f"r{n}@example.com"),
                    catalog=runtime.catalog,
                    default_sequence="quick",
                    now=utcnow(),
                    queue_lease=60,
                ).delivery_to_enqueue
            )
            is not None
        ]


def _workers(runtime: Runtime) -> dramatiq.Worker:
    worker = dramatiq.Worker(
        runtime.broker, worker_threads=8, worker_timeout=20, queues=set(QUEUES)
    )
    worker.start()
    return worker


def test_sending_keeps_to_the_shared_rate(settings: Settings, fake_sendgrid: FakeSendGrid) -> None:
    # Given a rate of 10 emails a second shared by all workers, and 40 emails due at once
    rt = build_runtime(settings.model_copy(update={"send_rate": 10}))
    worker = _workers(rt)
    try:
        rt.enqueue(_queue_many(rt, 40))
        wait_for(lambda: len(fake_sendgrid.accepted) == 40, timeout=30, what="40 emails")
    finally:
        worker.stop()
        rt.close()
    # Then they span at least four one-second windows (eight threads alone take a fraction of that)
    times = sorted(a.at for a in fake_sendgrid.accepted)
    assert times[-1] - times[0] >= 2.0
    assert max(sum(1 for t in times if start <= t < start + 1.0) for start in times) <= 20


def test_a_429_pauses_every_worker_until_the_reset(
    settings: Settings, fake_sendgrid: FakeSendGrid
) -> None:
    # Given the provider's first answer is a 429 that resets in 1.5 s, and 30 emails due at once
    rt = build_runtime(settings.model_copy(update={"send_rate": 1000}))
    reset_at = time.monotonic() + 1.5  # the same instant as the header's epoch seconds
    fake_sendgrid.script([Scripted(429, {"X-RateLimit-Reset": str(time.time() + 1.5)})])
    worker = _workers(rt)
    try:
        rt.enqueue(_queue_many(rt, 30))
        wait_for(lambda: len(fake_sendgrid.accepted) == 30, timeout=30, what="30 emails")
    finally:
        worker.stop()
        rt.close()
    # Then, apart from requests already in flight, no request started before the reset
    limited = fake_sendgrid.arrivals[[o for _, o in fake_sendgrid.log].index("scripted 429")]
    later = [t for t in fake_sendgrid.arrivals if t > limited + 0.1]
    assert later, "every email was already in flight"
    assert min(later) >= reset_at - 0.05
    # And the provider saw a single 429
    assert [o for _, o in fake_sendgrid.log].count("scripted 429") == 1
