"""Signups due at once, on real Redis, PostgreSQL and a Dramatiq worker: a burst is sent in
batches through the due-now buffer, each row once; alone, a signup needs no scheduler."""

from __future__ import annotations

from collections.abc import Sequence

import dramatiq
import redis

from drip.models import DeliveryStatus
from drip.runtime import QUEUES, Runtime
from drip.send.actor import BATCH, SEND_QUEUE, enqueue_due_now
from drip.send.due_now import RedisDueNowBuffer, buffer_for
from drip.send.sender import SendResult
from drip.testing.fake_sendgrid import FakeSendGrid
from tests.conftest import wait_for
from tests.integration.conftest import REDIS_URL, drain
from tests.integration.helpers import api_client, deliveries


def test_a_burst_of_signups_is_sent_in_batches_and_each_once(
    runtime: Runtime, fake_sendgrid: FakeSendGrid
) -> None:
    calls: list[int] = []
    real = runtime.sender.send_batch

    def counting(delivery_ids: Sequence[int]) -> dict[int, SendResult]:
        calls.append(len(delivery_ids))
        return real(delivery_ids)

    runtime.sender.send_batch = counting  # type: ignore[method-assign]
    # Given 40 signups posted while no worker runs, and each id pushed once more
    # (at-least-once: a message delivered twice)
    client = api_client(runtime)
    for n in range(40):
        assert client.post("/signups", json={"email": f"b{n}@example.com"}).status_code == 202
    ids = [r.id for r in deliveries(runtime)]
    assert len(ids) == 40
    enqueue_due_now(runtime.broker, ids)
    # When a worker starts
    worker = dramatiq.Worker(
        runtime.broker, worker_threads=4, worker_timeout=50, queues=set(QUEUES)
    )
    worker.start()
    try:
        wait_for(lambda: len(fake_sendgrid.accepted) >= 40, timeout=30, what="40 emails")
        drain(runtime, worker)
    finally:
        worker.stop(timeout=5_000)
    # Then the 80 ids went out in full batches, a few calls instead of 80
    assert sorted(calls) == sorted(min(BATCH, 80 - start) for start in range(0, 80, BATCH))
    # And each delivery was accepted exactly once
    assert all(len(fake_sendgrid.accepted_for(i)) == 1 for i in ids)
    assert len(fake_sendgrid.accepted) == 40
    assert {r.status for r in deliveries(runtime) if r.step_id == "welcome"} == {
        DeliveryStatus.SENT
    }


def test_a_signup_alone_is_sent_without_a_scheduler(
    runtime: Runtime, worker: dramatiq.Worker, fake_sendgrid: FakeSendGrid
) -> None:
    # Given a running worker and no scheduler
    response = api_client(runtime).post("/signups", json={"email": "solo@example.com"})
    assert response.status_code == 202
    # Then step 1 arrives, and the buffer is left empty and disarmed
    wait_for(lambda: fake_sendgrid.accepted, timeout=10, what="the first email")
    runtime.broker.join(SEND_QUEUE, timeout=10_000)
    buffer = buffer_for(runtime.broker)
    assert isinstance(buffer, RedisDueNowBuffer)
    connection = redis.Redis.from_url(REDIS_URL)
    assert connection.llen(buffer.ids_key) == 0
    assert connection.exists(buffer.armed_key) == 0
