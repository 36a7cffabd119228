"""Run the sample series for 40 subscribers over thirty simulated days, for demos and notes.

Usage: python scripts/sample_run.py postgresql://postgres@127.0.0.1:5432/drip_sample [DAYS]

Every email goes through the real state machine (scheduler claim, sender, planner) to a
fake SendGrid on loopback that validates each body against SendGrid's schema; the clock
is moved instead of waited for. Provider events (delivered, opens, clicks, a bounce and
two unsubscribes) are stored and applied as the webhook would. Afterwards, try
`drip stats` and `drip contacts show s0@example.com` with DRIP_DATABASE_URL set.
"""

from __future__ import annotations

import random
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from drip.config import Settings
from drip.db import transaction
from drip.events.effects import apply_events
from drip.events.store import store_events
from drip.migrate import upgrade_database
from drip.models import Delivery, DeliveryStatus
from drip.runtime import build_runtime
from drip.signup.request import SignupRequest
from drip.signup.service import enroll_contact
from drip.testing.fake_sendgrid import FakeSendGrid

SHARED = Path(__file__).resolve().parents[2] / "shared" / "sendgrid" / "mail_send.schema.json"


def main(database_url: str, days: int = 30) -> None:
    upgrade_database(database_url)
    fake = FakeSendGrid(SHARED).start()
    settings = Settings(
        database_url=database_url,
        transport="sendgrid",
        sendgrid_api_key=fake.api_key,
        sendgrid_host=fake.url,
        redis_url="redis://127.0.0.1:6379/13",
        redis_namespace="sample",
        secret_key="sample-only",  # noqa: S106 - a throwaway demo database
        base_url="https://drip.example.com",
    )
    runtime = build_runtime(settings)
    clock = [datetime(2026, 11, 2, 14, 0, tzinfo=UTC)]  # a Monday; moved an hour at a time
    runtime.sender.clock = lambda: clock[0]
    now = clock[0]
    rng = random.Random(7)
    with transaction(runtime.sessions) as session:
        for n in range(40):
            enroll_contact(
                session,
                SignupRequest(
                    email=f"s{n}@example.com",
                    first_name=f"Reader{n}",
                    timezone=rng.choice(["America/New_York", "Europe/London"]),
                    source="landing-page",
                ),
                catalog=runtime.catalog,
                default_sequence="executive-resume",
                now=now,
                queue_lease=60,
            )
    seen = 0
    for _ in range(24 * days):  # hour by hour
        scheduler = runtime.scheduler()
        scheduler.clock = runtime.sender.clock
        claimed: list[int] = []
        scheduler.enqueue = claimed.extend
        scheduler.tick()
        with runtime.sessions() as session:
            queued = list(
                session.scalars(select(Delivery.id).where(Delivery.status == DeliveryStatus.QUEUED))
            )
        for delivery_id in set(claimed) | set(queued):
            runtime.sender.send(delivery_id)
        events = []
        for accepted in fake.accepted[seen:]:
            email = accepted.payload["personalizations"][0]["to"][0]["email"]
            base = {
                "email": email,
                "delivery_id": accepted.delivery_id,
                "timestamp": int(now.timestamp()),
            }
            events.append({**base, "event": "delivered", "sg_event_id": f"d{accepted.message_id}"})
            if email == "s13@example.com":
                events.append(
                    {
                        **base,
                        "event": "bounce",
                        "type": "bounce",
                        "reason": "550 mailbox unavailable",
                        "sg_event_id": f"b{accepted.message_id}",
                    }
                )
            elif rng.random() < 0.45:
                events.append({**base, "event": "open", "sg_event_id": f"o{accepted.message_id}"})
                if rng.random() < 0.3:
                    events.append(
                        {
                            **base,
                            "event": "click",
                            "url": "https://drip.example.com/download",
                            "sg_event_id": f"c{accepted.message_id}",
                        }
                    )
            if email in ("s21@example.com", "s34@example.com") and accepted.payload["custom_args"][
                "step"
            ] == ("write-for-the-role"):
                events.append(
                    {**base, "event": "unsubscribe", "sg_event_id": f"u{accepted.message_id}"}
                )
        seen = len(fake.accepted)
        if events:
            with transaction(runtime.sessions) as session:
                apply_events(session, store_events(session, events, now=now), now=now)
        clock[0] = now = now + timedelta(hours=1)
    print(
        f"{len(fake.accepted)} emails accepted by the fake SendGrid, "
        f"{len(fake.violations)} schema violations"
    )
    runtime.close()
    fake.stop()


if __name__ == "__main__":
    main(
        sys.argv[1] if len(sys.argv) > 1 else "postgresql://postgres@127.0.0.1:5432/drip_sample",
        int(sys.argv[2]) if len(sys.argv) > 2 else 30,
    )
