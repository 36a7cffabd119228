"""A resend whose answer was lost, settled from the provider's `processed` event, plans
nothing: the subscriber still gets each step of the line once.

End to end on PostgreSQL, Redis, a real worker and scheduler, and a provider stand-in that
accepts the resends and drops their answers; the events come through the signed webhook.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import dramatiq
import pytest
from sqlalchemy import select

from drip.db import transaction, utcnow
from drip.models import Contact, Delivery, DeliveryStatus
from drip.operations.resend import resend_step
from drip.runtime import Runtime
from drip.testing.fake_sendgrid import FakeSendGrid, Faults
from tests.conftest import TEST_SEQUENCES, wait_for
from tests.integration.conftest import WEBHOOK_KEYS
from tests.integration.helpers import api_client, deliveries, running_scheduler

PEOPLE = 20


@pytest.fixture
def sequences_dir(tmp_path: Path) -> Path:
    """The three-step test sequence with step 2 a few seconds after step 1, and step 3 a
    day later: the resends settle while step 2 is still scheduled."""
    target = tmp_path / "sequences"
    shutil.copytree(TEST_SEQUENCES, target)
    path = target / "quick.yaml"
    text = path.read_text()
    second, third = text.index("  - id: second"), text.index("  - id: third")
    path.write_text(
        text[:second]
        + text[second:third].replace("delay: 1s", "delay: 4s")
        + text[third:].replace("delay: 1s", "delay: 1d")
    )
    return target


def test_settled_resends_never_send_the_next_step_twice(
    runtime: Runtime, worker: dramatiq.Worker, fake_sendgrid: FakeSendGrid
) -> None:
    # Given 20 subscribers who received step 1, step 2 scheduled
    client = api_client(runtime)
    for n in range(PEOPLE):
        assert client.post("/signups", json={"email": f"r{n}@example.com"}).status_code == 202
    wait_for(lambda: len(fake_sendgrid.accepted) == PEOPLE, what="every step 1")
    # When an operator resends step 1 to each, and every answer is lost after acceptance
    fake_sendgrid.faults = Faults(accept_then_drop=1.0)
    resends = []
    with transaction(runtime.sessions) as session:
        sequence = runtime.catalog.get("quick").definition
        for contact in session.scalars(select(Contact)):
            resends.append(
                resend_step(
                    session,
                    contact,
                    sequence,
                    "welcome",
                    reason="asked again",
                    operator="ops",
                    now=utcnow(),
                    queue_lease=60,
                )
            )
    assert runtime.enqueue_after_commit(resends)

    def waiting() -> bool:
        rows = {d.id: d for d in deliveries(runtime)}
        return all(
            rows[i].status is DeliveryStatus.SENDING and rows[i].error is not None for i in resends
        )

    wait_for(waiting, what="every resend waiting for its event")
    fake_sendgrid.faults = Faults()
    # And the provider's processed events arrive through the signed webhook
    events = [
        {
            "event": "processed",
            "sg_event_id": f"processed-{a.message_id}",
            "delivery_id": a.delivery_id,
            "timestamp": int(utcnow().timestamp()),
            "email": "someone@example.com",
        }
        for a in fake_sendgrid.accepted
        if a.delivery_id is not None and int(a.delivery_id) in resends
    ]
    assert len(events) == PEOPLE
    body = json.dumps(events).encode()
    assert (
        client.post("/webhooks/sendgrid", content=body, headers=WEBHOOK_KEYS.headers(body))
    ).status_code == 200
    # Then the scheduler settles each resend as sent, and step 2 goes once to each
    with running_scheduler(runtime) as scheduler:
        wait_for(
            lambda: all(
                d.status is DeliveryStatus.SENT for d in deliveries(runtime) if d.id in resends
            ),
            what="every resend settled as sent",
        )

        def every_step_2_settled() -> bool:
            seconds = [d for d in deliveries(runtime) if d.step_id == "second"]
            return len(seconds) >= PEOPLE and all(d.status is DeliveryStatus.SENT for d in seconds)

        wait_for(every_step_2_settled, timeout=20, what="every step 2 sent")
        scheduler.wait_past(utcnow())
    per_person = Counter(
        (d.contact_id, d.step_id, d.resend) for d in _accepted_rows(runtime, fake_sendgrid)
    )
    assert {n for (_, step, resend), n in per_person.items() if step == "second"} == {1}
    assert len([k for k in per_person if k[1] == "second"]) == PEOPLE
    seconds = [d for d in deliveries(runtime) if d.step_id == "second"]
    assert len(seconds) == PEOPLE


def _accepted_rows(runtime: Runtime, fake: FakeSendGrid) -> list[Delivery]:
    """The delivery row of every email the provider accepted (once per acceptance)."""
    rows = {d.id: d for d in deliveries(runtime)}
    return [rows[int(a.delivery_id)] for a in list(fake.accepted) if a.delivery_id is not None]
