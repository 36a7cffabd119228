"""Tracked links and subject tests end to end: real PostgreSQL, Redis, a Dramatiq worker and
the fake SendGrid. The tracked links arrive in both parts of the email; following one
redirects to the link the email carried and records a person's click once; a scanner, a
HEAD or a click on arrival is kept apart as a machine's; a forged token redirects nowhere;
each contact gets its subject variant, recorded on its delivery."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import dramatiq
import pytest
from itsdangerous import URLSafeSerializer
from sqlalchemy import select, text, update
from typer.testing import CliRunner

from drip.cli.main import app as cli
from drip.config import Settings
from drip.db import transaction, utcnow
from drip.events.store import store_events
from drip.models import Contact, Delivery, LinkClick
from drip.render.variants import choose_variant
from drip.reports.funnel import funnel, link_funnel
from drip.runtime import Runtime
from drip.testing.fake_sendgrid import FakeSendGrid, recipient_views
from tests.conftest import wait_for
from tests.integration.conftest import drain
from tests.integration.helpers import api_client, running_scheduler
from tests.integration.test_processes import settings_env

BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"
SUBJECTS = ["Welcome, {{ contact.first_name or 'friend' }}", "Your guide is here"]
TRACKED = re.compile(r"https://drip\.test/l/[\w.-]+")


#: The admin page's token in these tests.
ADMIN = "admin-token-for-the-click-tests-0123456789"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The integration settings with the admin page on."""
    return settings.model_copy(update={"admin_token": ADMIN})


@pytest.fixture
def sequences_dir(sequences_dir: Path) -> Path:
    """The quick sequence with tracked links, UTM tags, outbound links and a subject test."""
    path = sequences_dir / "quick.yaml"
    text = path.read_text().replace(
        "steps:\n",
        "track_clicks: true\n"
        "utm: {source: drip, medium: email, campaign: '{{ sequence.id }}',"
        " content: '{{ step.id }}'}\nsteps:\n",
    )
    text = text.replace(
        """subject: "Welcome, {{ contact.first_name or 'friend' }}\"""",
        f"subject: {{variants: {json.dumps(SUBJECTS)}}}",
    )
    path.write_text(text)
    welcome = sequences_dir / "templates" / "quick" / "welcome.html"
    welcome.write_text(
        '<p>Read <a href="https://example.org/guide?lang=en#start">the guide</a> or'
        ' <a href="https://example.org/p?utm_source=partner">the partner page</a>.</p>\n'
        '<p><a href="{{ links.download }}">Download</a>'
        ' or <a href="mailto:coach@example.com">write to us</a>.</p>\n'
    )
    return sequences_dir


def signup_and_send(runtime: Runtime, fake: FakeSendGrid, emails: list[str]) -> list[dict]:
    client = api_client(runtime)
    for email in emails:
        assert client.post("/signups", json={"email": email}).status_code == 202
    with running_scheduler(runtime):
        wait_for(lambda: len(views(fake)) >= len(emails), timeout=20, what="the welcome emails")
    return views(fake)


def views(fake: FakeSendGrid) -> list[dict]:
    return [v for a in fake.accepted for v in recipient_views(a.payload)]


def backdate(runtime: Runtime, delivery_id: int, seconds: float = 60) -> None:
    """As if the email had been sent `seconds` ago (a person reads it later than a gateway)."""
    with runtime.sessions() as session, session.begin():
        sent_at = session.scalar(select(Delivery.sent_at).where(Delivery.id == delivery_id))
        assert sent_at is not None
        session.execute(
            update(Delivery)
            .where(Delivery.id == delivery_id)
            .values(sent_at=sent_at - timedelta(seconds=seconds))
        )


def clicks(runtime: Runtime) -> list[tuple[int, int, bool, str | None, int]]:
    with runtime.sessions() as session:
        return [
            (c.delivery_id, c.link_index, c.human, c.machine_reason, c.count)
            for c in session.scalars(
                select(LinkClick).order_by(
                    LinkClick.delivery_id, LinkClick.link_index, LinkClick.human
                )
            )
        ]


def test_tracked_links_redirect_once_counted_and_scanners_do_not_count(
    runtime: Runtime, worker: dramatiq.Worker, fake_sendgrid: FakeSendGrid, settings: Settings
) -> None:
    # Given a welcome email sent with click tracking
    (view,) = signup_and_send(runtime, fake_sendgrid, ["ann@example.com"])
    drain(runtime, worker)
    delivery_id = int(view["custom_args"]["delivery_id"])
    text, html = (part["value"] for part in view["content"])
    tracked = TRACKED.findall(html)
    # Then both outbound links go through /l/, in both parts; the download and mailto
    # links and the unsubscribe link are left as they are
    assert len(tracked) == 2
    assert TRACKED.findall(text)[:2] == tracked
    assert "example.org" not in html
    assert "example.org" not in text
    assert "https://drip.test/download/quick/" in html
    assert "mailto:coach@example.com" in html
    assert "https://drip.test/unsubscribe/" in html

    client = api_client(runtime)
    guide, partner = tracked
    backdate(runtime, delivery_id)
    # When a person follows the first link, twice
    for _ in range(2):
        answer = client.get(guide, headers={"User-Agent": BROWSER})
        # Then they are sent to the link the email carried, UTM tags added before the fragment
        assert answer.status_code == 302
        assert answer.headers["location"] == (
            "https://example.org/guide?lang=en&utm_source=drip&utm_medium=email"
            "&utm_campaign=quick&utm_content=welcome#start"
        )
        assert answer.headers["cache-control"] == "no-store"
        assert answer.headers["referrer-policy"] == "no-referrer"
    # And a link tagged by hand keeps its own tags, none added
    answer = client.get(partner, headers={"User-Agent": BROWSER})
    assert answer.headers["location"] == "https://example.org/p?utm_source=partner"
    # When a scanner and a HEAD follow the first link too
    assert client.get(guide, headers={"User-Agent": "Mimecast URL Protect"}).status_code == 302
    assert client.head(guide, headers={"User-Agent": BROWSER}).status_code == 302
    # Then the person's click is one row however often it was followed, the machines' another
    assert clicks(runtime) == [
        (delivery_id, 0, False, "scanner", 2),
        (delivery_id, 0, True, None, 2),
        (delivery_id, 1, True, None, 1),
    ]
    # And the funnel counts one person who clicked, per step and per link
    with runtime.sessions() as session:
        welcome = next(s for s in funnel(session, runtime.catalog) if s.step == "welcome")
        lines = link_funnel(session, runtime.catalog)
    assert welcome.counts["human_clicks"] == 1
    assert welcome.rate("human_clicks") == 1.0
    assert [(x.link_index, x.human_clicks, x.machine_clicks) for x in lines] == [
        (0, 1, 1),
        (1, 1, 0),
    ]

    # And `drip stats` shows it, every step of the file in order, reached or not
    result = CliRunner().invoke(
        cli, ["stats", "--links", "--variants", "--json"], env=settings_env(settings)
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert [s["step"] for s in report["steps"]] == ["welcome", "second", "third"]
    assert report["steps"][0]["human_clicks"] == 1
    assert [(x["link"], x["human_clicks"]) for x in report["links"]] == [(0, 1), (1, 1)]
    assert report["subject_tests"][0]["verdict"].startswith("not enough data yet")

    # And so does /admin: every step, human clicks with their rate, and the tracked links
    page = client.get("/admin", headers={"Authorization": f"Bearer {ADMIN}"})
    assert page.status_code == 200
    rows = re.findall(r"<tr><td>(\w+)</td>", page.text)
    assert rows[:3] == ["welcome", "second", "third"]
    assert "<th>human_clicks</th>" in page.text
    assert "<td>1 (100%)</td>" in page.text
    assert "Tracked links" in page.text
    assert (
        "utm_content=welcome#start</td><td>1</td><td>1</td><td>100.0%</td><td>1</td>" in page.text
    )
    assert "not enough data yet" in page.text


def test_a_click_on_arrival_is_a_machine_and_forged_tokens_redirect_nowhere(
    runtime: Runtime, worker: dramatiq.Worker, fake_sendgrid: FakeSendGrid
) -> None:
    (view,) = signup_and_send(runtime, fake_sendgrid, ["bob@example.com"])
    drain(runtime, worker)
    delivery_id = int(view["custom_args"]["delivery_id"])
    guide = TRACKED.findall(view["content"][1]["value"])[0]
    client = api_client(runtime)
    # A gateway that follows the link as the email arrives is a machine, not a reader
    assert client.get(guide, headers={"User-Agent": BROWSER}).status_code == 302
    assert clicks(runtime) == [(delivery_id, 0, False, "too_soon", 1)]
    with runtime.sessions() as session:
        welcome = next(s for s in funnel(session, runtime.catalog) if s.step == "welcome")
        (line,) = link_funnel(session, runtime.catalog)
    assert welcome.counts["human_clicks"] == 0
    assert (line.human_clicks, line.machine_clicks) == (0, 1)

    token = guide.rsplit("/", 1)[1]
    forged = [
        token[:-3] + ("abc" if not token.endswith("abc") else "xyz"),  # tampered signature
        URLSafeSerializer("another-key", salt="drip.click").dumps(
            [delivery_id, 0, "https://evil.example/"]
        ),
        URLSafeSerializer(settings_key(runtime), salt="drip.click").dumps(
            [delivery_id, 0, "javascript:alert(1)"]
        ),
        runtime.signer.sign("some-public-id"),  # ours, for another purpose
        "not-a-token",
    ]
    for bad in forged:
        answer = client.get(f"/l/{bad}", headers={"User-Agent": BROWSER})
        assert answer.status_code == 404, bad
        assert "location" not in answer.headers
        assert "This link is not valid" in answer.text
    assert clicks(runtime) == [(delivery_id, 0, False, "too_soon", 1)]

    # When the click cannot be recorded, the reader is still sent where the link leads
    with runtime.sessions() as session, session.begin():
        session.execute(text("ALTER TABLE link_clicks RENAME TO link_clicks_away"))
    answer = client.get(guide, headers={"User-Agent": BROWSER})
    assert answer.status_code == 302
    assert answer.headers["location"].startswith("https://example.org/guide?lang=en&utm_source=")


def settings_key(runtime: Runtime) -> str:
    return runtime.settings.secret_key or ""


def test_each_contact_gets_its_subject_variant_recorded_on_the_delivery(
    runtime: Runtime, worker: dramatiq.Worker, fake_sendgrid: FakeSendGrid
) -> None:
    emails = [f"reader{n}@example.com" for n in range(8)]
    sent = signup_and_send(runtime, fake_sendgrid, emails)
    drain(runtime, worker)
    by_delivery = {int(v["custom_args"]["delivery_id"]): v["subject"] for v in sent}
    with runtime.sessions() as session:
        rows = session.execute(
            select(Delivery.id, Delivery.subject_variant, Contact.public_id)
            .join(Contact, Contact.id == Delivery.contact_id)
            .where(Delivery.step_id == "welcome")
        ).all()
    assert len(rows) == len(emails)
    expected_subjects = ["Welcome, friend", "Your guide is here"]
    for delivery_id, variant, public_id in rows:
        assert variant == choose_variant(public_id, "welcome", 2)
        assert by_delivery[delivery_id] == expected_subjects[variant]
    assert {variant for _, variant, _ in rows} == {0, 1}  # eight readers: both arms used


def test_machine_opens_are_counted_apart_and_the_note_says_so(
    runtime: Runtime, worker: dramatiq.Worker, fake_sendgrid: FakeSendGrid, settings: Settings
) -> None:
    sent = signup_and_send(runtime, fake_sendgrid, ["cy@example.com", "dee@example.com"])
    drain(runtime, worker)
    # Given one open by a person and one by Apple's privacy proxy, as SendGrid reports them
    events = [
        {
            "event": "open",
            "sg_event_id": f"open-{n}",
            "delivery_id": view["custom_args"]["delivery_id"],
            "email": view["personalizations"][0]["to"][0]["email"],
            "timestamp": int(utcnow().timestamp()),
            "sg_machine_open": machine,
        }
        for n, (view, machine) in enumerate(zip(sent, (True, False), strict=True))
    ]
    with transaction(runtime.sessions) as session:
        store_events(session, events, now=utcnow())
    # Then the funnel counts both opens and says how many were a machine's
    with runtime.sessions() as session:
        welcome = next(s for s in funnel(session, runtime.catalog) if s.step == "welcome")
    assert (welcome.counts["opened"], welcome.machine_opened) == (2, 1)
    result = CliRunner().invoke(cli, ["stats"], env=settings_env(settings) | {"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "1 flagged sg_machine_open" in " ".join(result.output.split())
    assert "opens never drive conditions" in " ".join(result.output.split())
