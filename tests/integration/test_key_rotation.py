"""Rotating `DRIP_SECRET_KEY` keeps every link already sent working while the old key is
listed in `DRIP_SECRET_KEY_FALLBACKS`."""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy import select

from drip.config import Settings
from drip.db import utcnow
from drip.models import Contact, ContactStatus
from drip.runtime import Runtime, build_runtime
from drip.testing.fake_sendgrid import FakeSendGrid
from tests.integration.helpers import api_client
from tests.integration.test_live_edits import Story


def test_links_sent_before_a_rotation_still_work_after_it(
    runtime: Runtime, settings: Settings, fake_sendgrid: FakeSendGrid, sequences_dir: Path
) -> None:
    # Given an email sent under the old key
    Story(runtime, fake_sendgrid, sequences_dir, utcnow()).signup("a@example.com")
    payload = fake_sendgrid.accepted[0].payload
    unsubscribe = payload["headers"]["List-Unsubscribe"].strip("<>")
    download = re.search(
        r'href="(https://drip\.test/download/[^"]+)"', payload["content"][1]["value"]
    )
    assert download is not None
    old_key = settings.secret_key
    # When the service restarts without the old key, the links are refused (its address hash
    # key pinned, as a rotation needs: drip.contacts.keys refuses to start otherwise)
    forgetful = build_runtime(
        settings.model_copy(
            update={"secret_key": "k" * 48, "hash_key": settings.resolved_hash_key()}
        )
    )
    try:
        assert api_client(forgetful).get(download.group(1)).status_code == 400
    finally:
        forgetful.close()
    # When it restarts with a new key and the old one as a fallback
    rotated = build_runtime(
        settings.model_copy(
            update={"secret_key": "k" * 48, "secret_key_fallbacks": f"{'o' * 40},{old_key}"}
        )
    )
    try:
        client = api_client(rotated)
        # Then the old download and unsubscribe links work
        assert client.get(download.group(1)).status_code == 200
        assert client.post(unsubscribe, data={"List-Unsubscribe": "One-Click"}).status_code == 200
        with rotated.sessions() as session:
            assert session.scalars(select(Contact.status)).one() is ContactStatus.UNSUBSCRIBED
        # And new links are signed with the new key alone
        fresh = rotated.links.unsubscribe_url("x").rsplit("/", 1)[1]
        assert runtime.signer.sign("x") != fresh
    finally:
        rotated.close()
