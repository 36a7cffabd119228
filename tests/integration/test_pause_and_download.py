"""Pausing a sequence, skipping late steps on resume, and the download link: bound to its
sequence, and serving only a file inside `files/`."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import dramatiq
import pytest
from itsdangerous import URLSafeSerializer
from sqlalchemy import select

from drip.db import transaction, utcnow
from drip.models import AuditEntry, Contact, DeliveryStatus, Download
from drip.runtime import Runtime
from drip.schedule.pauses import pause_sequence, resume_sequence
from drip.sequences.catalog import SequenceCatalog
from drip.testing.fake_sendgrid import FakeSendGrid
from drip.unsubscribe.tokens import Purpose
from tests.integration.conftest import drain
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


@pytest.fixture
def two_offers(runtime: Runtime, sequences_dir: Path) -> Runtime:
    """Sequences `quick` (files/guide.txt) and `quick-b` (files/b.txt), each offering a file."""
    (sequences_dir / "files" / "b.txt").write_text("Sequence B's file.\n")
    text = (sequences_dir / "quick.yaml").read_text()
    (sequences_dir / "quick-b.yaml").write_text(
        text.replace("id: quick", "id: quick-b", 1).replace(
            "{file: files/guide.txt, filename: Guide.txt}", "{file: files/b.txt, filename: B.txt}"
        )
    )
    runtime.catalog = runtime.sender.catalog = SequenceCatalog.load(
        sequences_dir, postal_address="x"
    )
    return runtime


def download_link(fake: FakeSendGrid, sequence: str) -> str:
    for accepted in fake.accepted:
        if accepted.payload["custom_args"]["sequence"] == sequence:
            html = accepted.payload["content"][1]["value"]
            link = re.search(rf'href="(https://drip\.test/download/{sequence}/[^"]+)"', html)
            assert link is not None
            return link.group(1)
    raise AssertionError(f"no email of {sequence}")


def test_a_download_link_opens_only_the_file_of_its_own_sequence(
    two_offers: Runtime, worker: dramatiq.Worker, fake_sendgrid: FakeSendGrid
) -> None:
    runtime, client = two_offers, api_client(two_offers)
    # Given a subscriber of both sequences, with a download link from each
    for sequence in ("quick", "quick-b"):
        client.post("/signups", json={"email": "a@example.com", "sequence": sequence})
    drain(runtime, worker)
    link_a, link_b = download_link(fake_sendgrid, "quick"), download_link(fake_sendgrid, "quick-b")
    # Then each link opens its own file
    assert client.get(link_a).content == b"A one-page guide.\n"
    assert client.get(link_b).content == b"Sequence B's file.\n"
    # And A's token at B's address (or B's at A's) opens nothing, and records nothing
    assert client.get(link_a.replace("/quick/", "/quick-b/")).status_code == 400
    assert client.get(link_b.replace("/quick-b/", "/quick/")).status_code == 400
    with runtime.sessions() as session:
        assert sorted(d.sequence_id for d in session.scalars(select(Download))) == [
            "quick",
            "quick-b",
        ]


def test_a_link_sent_before_binding_opens_only_a_sequence_the_contact_is_in(
    two_offers: Runtime, fake_sendgrid: FakeSendGrid, sequences_dir: Path
) -> None:
    runtime, client = two_offers, api_client(two_offers)
    story = Story(runtime, fake_sendgrid, sequences_dir, utcnow())
    story.signup("a@example.com")  # in `quick` only
    with runtime.sessions() as session:
        public_id = session.scalars(select(Contact.public_id)).one()
    # Given a download link in the old format: the contact's public id alone
    old = URLSafeSerializer([runtime.settings.secret_key or ""], salt=Purpose.DOWNLOAD.value)
    token = old.dumps(public_id)
    # Then it still serves the file of the sequence its email came from, and no other
    assert client.get(f"/download/quick/{token}").status_code == 200
    assert client.get(f"/download/quick-b/{token}").status_code == 400


def test_an_offered_file_swapped_for_a_symlink_after_loading_is_not_served(
    runtime: Runtime, fake_sendgrid: FakeSendGrid, sequences_dir: Path
) -> None:
    story = Story(runtime, fake_sendgrid, sequences_dir, utcnow())
    story.signup("a@example.com")
    link = download_link(fake_sendgrid, "quick")
    # Given the sequence loaded with a good file, which is then swapped for a symbolic link
    offered = sequences_dir / "files" / "guide.txt"
    offered.unlink()
    offered.symlink_to("/etc/passwd")
    # When the download link is followed
    response = api_client(runtime).get(link)
    # Then the file outside files/ is not served, and no download is recorded
    assert response.status_code == 404
    assert b"root:" not in response.content
    with runtime.sessions() as session:
        assert session.scalars(select(Download)).all() == []
