"""Run the sample series for 40 subscribers over thirty simulated days, for demos and notes.

Usage: python scripts/sample_run.py postgresql://postgres@127.0.0.1:5432/drip_sample [DAYS]

Every email goes through the real state machine (scheduler claim, sender, planner) to a
fake SendGrid on loopback that validates each body against SendGrid's schema; the clock
is moved instead of waited for. Provider events (delivered, opens, clicks, a bounce and
two unsubscribes) are stored and applied as the webhook would. Readers follow the tracked
links of some emails through drip's own `/l/` redirect (an hour after the email, as a
person; a link scanner's HEAD right away), and the shop reports three purchases through
`POST /v1/events`, which end the series and start client onboarding. Afterwards, try
`drip stats --links` and `drip contacts show s0@example.com` with DRIP_DATABASE_URL set.
"""

from __future__ import annotations

import random
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select

from drip.api.app import create_app
from drip.config import Settings
from drip.db import transaction
from drip.events.contact_apply import apply_contact_event, sequence_reaction
from drip.events.effects import apply_events
from drip.events.store import store_events
from drip.keys.store import create_key
from drip.migrate import upgrade_database
from drip.models import ContactEvent, Delivery, DeliveryStatus
from drip.runtime import build_runtime
from drip.signup.request import SignupRequest
from drip.signup.service import enroll_contact
from drip.testing.fake_sendgrid import FakeSendGrid

SHARED = Path(__file__).resolve().parents[2] / "shared" / "sendgrid" / "mail_send.schema.json"

#: First names of the sample readers (the signup form accepts what names contain).
NAMES = ("Ann", "Ben", "Chen", "Dara", "Émile", "Farah", "Gus", "Hana", "Ivo", "June")

#: Readers who buy a resume package, and on which day of the run.
PURCHASES = {"s5@example.com": 6, "s17@example.com": 9, "s28@example.com": 15}

#: A tracked link in an email's HTML.
TRACKED = re.compile(r'href="(https://drip\.example\.com/l/[^"]+)"')


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
    # A Monday, far enough back that every simulated send is in the past when readers click
    # (the click endpoint reads the real clock); moved an hour at a time.
    clock = [datetime(2026, 10, 5, 14, 0, tzinfo=UTC)]
    runtime.sender.clock = lambda: clock[0]
    now = clock[0]
    rng = random.Random(7)
    with transaction(runtime.sessions) as session:
        for n in range(40):
            enroll_contact(
                session,
                SignupRequest(
                    email=f"s{n}@example.com",
                    first_name=NAMES[n % len(NAMES)],
                    timezone=rng.choice(["America/New_York", "Europe/London"]),
                    source="landing-page",
                ),
                catalog=runtime.catalog,
                default_sequence="executive-resume",
                now=now,
                queue_lease=60,
            )
    client = TestClient(create_app(runtime), base_url="https://drip.example.com")
    with transaction(runtime.sessions) as session:
        _, shop = create_key(session, "shop", "events:write", operator="sample", now=now)
    started = now
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
            follow_links(client, accepted.payload, rng)
        seen = len(fake.accepted)
        for address, day in PURCHASES.items():
            if now == started + timedelta(days=day):
                answer = client.post(
                    "/v1/events",
                    json={
                        "email": address,
                        "name": "purchased",
                        "id": f"order-{address}",
                        "occurred_at": now.isoformat(),
                    },
                    headers={"Authorization": f"Bearer {shop.token}"},
                )
                assert answer.status_code == 202, answer.text
                # Applied here, on the simulated clock, as the events actor would.
                with transaction(runtime.sessions) as session:
                    for event_id in session.scalars(
                        select(ContactEvent.id).where(ContactEvent.applied_at.is_(None))
                    ).all():
                        apply_contact_event(
                            session,
                            event_id,
                            react=sequence_reaction(),
                            catalog=runtime.catalog,
                            now=now,
                            queue_lease=60,
                        )
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


def follow_links(client: TestClient, payload: dict[str, object], rng: random.Random) -> None:
    """Some readers follow a tracked link of this email: a person with a browser; and a
    link scanner checks every link of some emails with a HEAD, which counts as a machine."""
    contents = payload.get("content")
    html = next((c["value"] for c in contents if c["type"] == "text/html"), "")  # type: ignore[union-attr]
    links = TRACKED.findall(html)
    if not links:
        return
    if rng.random() < 0.3:
        client.head(links[0], headers={"User-Agent": "Mimecast Link Scanner"})
    if rng.random() < 0.35:
        answer = client.get(
            rng.choice(links),
            headers={"User-Agent": "Mozilla/5.0 (Macintosh) Safari/605.1.15"},
            follow_redirects=False,
        )
        assert answer.status_code == 302, answer.text


if __name__ == "__main__":
    main(
        sys.argv[1] if len(sys.argv) > 1 else "postgresql://postgres@127.0.0.1:5432/drip_sample",
        int(sys.argv[2]) if len(sys.argv) > 2 else 30,
    )
