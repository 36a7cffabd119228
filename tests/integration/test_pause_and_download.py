"""Pausing a sequence, skipping late steps on resume, and the template download link."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from drip.db import transaction, utcnow
from drip.models import AuditEntry, DeliveryStatus, Download
from drip.runtime import Runtime
from drip.schedule.pauses import pause_sequence, resume_sequence
from drip.sequences.catalog import SequenceCatalog
from drip.testing.fake_sendgrid import FakeSendGrid
from tests.integration.helpers import api_client, deliveries
from tests.integration.test_live_edits import Story


def test_nothing_is_sent_while_paused_and_late_steps_are_skipped_on_resume(
    runtime: Runtime, fake_sendgrid: FakeSendGrid, sequences_dir: Path
) -> None:
    # Given "second" may be at most one hour late
    path = sequences_dir / "quick.yaml"
    path.write_text(
        path.read_text().replace(
            'subject: "Second email"', 'subject: "Second email"\n    max_lateness: 1h'
        )
    )
    story = Story(runtime, fake_sendgrid, sequences_dir, utcnow())
    runtime.catalog = runtime.sender.catalog = SequenceCatalog.load(
        sequences_dir, postal_address="x"
    )
    runtime.sender.clock = story.clock
    story.signup("a@example.com")
    # When the sequence is paused for a day
    with transaction(runtime.sessions) as session:
        assert pause_sequence(session, "quick", by="ops", reason="copy review", now=story.now)
    story.run(seconds=3600 * 24)
    assert story.received() == ["welcome"]  # nothing left while paused
    with transaction(runtime.sessions) as session:
        assert resume_sequence(session, "quick", by="ops", reason="approved", now=story.now)
    story.run(seconds=1)
    story.run(seconds=2)
    # Then "second", a day late, is skipped with the reason, and "third" follows it
    rows = {r.step_id: r for r in deliveries(runtime)}
    assert rows["second"].status is DeliveryStatus.SKIPPED
    assert "more than max_lateness 1h" in (rows["second"].error or "")
    assert story.received() == ["welcome", "third"]
    with runtime.sessions() as session:
        actions = [(a.action, a.operator, a.reason) for a in session.scalars(select(AuditEntry))]
    assert actions == [
        ("sequence.pause", "ops", "copy review"),
        ("sequence.resume", "ops", "approved"),
    ]


def test_a_queued_delivery_of_a_paused_sequence_goes_back_to_the_schedule(
    runtime: Runtime, fake_sendgrid: FakeSendGrid, sequences_dir: Path
) -> None:
    story = Story(runtime, fake_sendgrid, sequences_dir, utcnow())
    with transaction(runtime.sessions) as session:
        pause_sequence(session, "quick", by="ops", reason=None, now=story.now)
    story.signup("a@example.com")  # the signup's fast path had already queued step 1
    assert fake_sendgrid.accepted == []
    assert [r.status for r in deliveries(runtime)] == [DeliveryStatus.SCHEDULED]


def test_the_download_link_in_email_one_serves_the_file_and_records_it(
    runtime: Runtime, fake_sendgrid: FakeSendGrid, sequences_dir: Path
) -> None:
    story = Story(runtime, fake_sendgrid, sequences_dir, utcnow())
    story.signup("a@example.com")
    html = fake_sendgrid.accepted[0].payload["content"][1]["value"]
    link = re.search(r'href="(https://drip\.test/download/[^"]+)"', html)
    assert link is not None
    client = api_client(runtime)
    response = client.get(link.group(1))
    assert response.status_code == 200
    assert response.content == b"A one-page guide.\n"
    assert 'filename="Guide.txt"' in response.headers["content-disposition"]
    with runtime.sessions() as session:
        assert [(d.sequence_id) for d in session.scalars(select(Download))] == ["quick"]
    # A tampered link is refused without a hint
    assert client.get(link.group(1)[:-2] + "xx").status_code == 400
    # An unsubscribe token is not a download token
    unsubscribe = fake_sendgrid.accepted[0].payload["headers"]["List-Unsubscribe"].strip("<>")
    assert client.get("/download/quick/" + unsubscribe.rsplit("/", 1)[1]).status_code == 400


def test_a_download_link_keeps_working_after_an_unsubscribe(
    runtime: Runtime, fake_sendgrid: FakeSendGrid, sequences_dir: Path
) -> None:
    story = Story(runtime, fake_sendgrid, sequences_dir, utcnow() - timedelta(days=1))
    story.signup("a@example.com")
    payload = fake_sendgrid.accepted[0].payload
    client = api_client(runtime)
    client.post(
        payload["headers"]["List-Unsubscribe"].strip("<>"), data={"List-Unsubscribe": "One-Click"}
    )
    link = re.search(r'href="(https://drip\.test/download/[^"]+)"', payload["content"][1]["value"])
    assert link is not None
    assert client.get(link.group(1)).status_code == 200
