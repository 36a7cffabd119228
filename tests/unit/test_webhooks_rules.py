"""Outbound webhooks without services: the file's checks, URL rules, backoff, signing, bodies."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from standardwebhooks import Webhook

from drip.errors import WebhookConfigError
from drip.webhooks.config_file import ENDPOINTS_FILE, check_url, load_endpoints_file
from drip.webhooks.events import EVENT_TYPES, ContactRef, EventType, build_body, new_event_id
from drip.webhooks.retries import RetryPolicy, compute_backoff, next_attempt
from drip.webhooks.signing import SecretUnusable, signed_headers

SECRET = "whsec_" + base64.b64encode(b"a test secret of 32 bytes, fixed").decode()


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "webhooks.yaml").write_text(text)
    return tmp_path


def test_a_good_file_loads_every_endpoint(tmp_path: Path) -> None:
    folder = write(
        tmp_path,
        "endpoints:\n"
        "  - url: https://crm.example.com/hooks\n"
        "    events: [contact.subscribed, contact.unsubscribed, contact.subscribed]\n"
        "    secret_env: DRIP_WEBHOOK_CRM_SECRET\n",
    )
    loaded = load_endpoints_file(folder, development=False)
    assert [(e.url, e.events, e.secret_env) for e in loaded.endpoints] == [
        (
            "https://crm.example.com/hooks",
            ["contact.subscribed", "contact.unsubscribed"],
            "DRIP_WEBHOOK_CRM_SECRET",
        )
    ]


def test_no_file_means_no_endpoints(tmp_path: Path) -> None:
    assert load_endpoints_file(tmp_path, development=False).endpoints == ()


def test_each_problem_is_named_with_file_line_and_field(tmp_path: Path) -> None:
    folder = write(
        tmp_path,
        "endpoints:\n"
        "  - url: http://crm.example.com/hooks\n"  # line 2: http to a public host
        "    events: [contact.subscribed]\n"
        "    secret_env: CRM\n"
        "  - url: https://ok.example.com/\n"
        "    events: [email.opened]\n"  # line 6: no such event
        "    secret_env: 'not a name'\n"  # line 7
        "    secret: whsec_inline\n",  # line 8: secrets never go in the file
    )
    with pytest.raises(WebhookConfigError) as caught:
        load_endpoints_file(folder, development=True)
    found = {(p.line, p.field) for p in caught.value.problems}
    assert found == {
        (2, "endpoints[0].url"),
        (6, "endpoints[1].events"),
        (7, "endpoints[1].secret_env"),
        (8, "endpoints[1].secret"),
    }
    text = str(caught.value)
    assert (
        f"{folder / 'webhooks.yaml'}:6: endpoints[1].events: unknown event type 'email.opened'"
        in text
    )


def test_a_url_listed_twice_is_refused_at_its_line(tmp_path: Path) -> None:
    entry = "  - url: https://a.example.com/\n    events: [email.sent]\n    secret_env: A\n"
    folder = write(tmp_path, "endpoints:\n" + entry + entry)
    with pytest.raises(WebhookConfigError, match=r"webhooks.yaml:5: url: is listed twice"):
        load_endpoints_file(folder, development=False)


def test_broken_yaml_names_its_line(tmp_path: Path) -> None:
    folder = write(tmp_path, "endpoints:\n  - url: [unclosed\n")
    with pytest.raises(WebhookConfigError, match=r"webhooks.yaml:3: yaml"):
        load_endpoints_file(folder, development=False)


@pytest.mark.parametrize(
    ("url", "development", "allowed"),
    [
        ("https://crm.example.com/h", False, True),
        ("http://crm.example.com/h", False, False),
        ("http://127.0.0.1:8123/h", False, False),  # production: https only, even locally
        ("http://127.0.0.1:8123/h", True, True),
        ("http://[::1]:8123/h", True, True),
        ("http://localhost/h", True, True),
        ("http://10.0.0.5/h", True, False),  # development: plain http to loopback only
        ("ftp://example.com/h", True, False),
        ("https://user:pw@example.com/h", False, False),
        ("https:///nohost", False, False),
    ],
)
def test_https_outside_development_and_http_only_to_loopback(
    url: str, development: bool, allowed: bool
) -> None:
    if allowed:
        assert check_url(url, development=development) == url
    else:
        with pytest.raises(ValueError, match=r"URL|https|loopback|password"):
            check_url(url, development=development)


def test_backoff_doubles_with_jitter_and_stops_at_its_cap() -> None:
    policy = RetryPolicy(base=timedelta(seconds=10), cap=timedelta(hours=6))
    rng = random.Random(7)
    for attempts, ceiling in [(1, 10), (2, 20), (3, 40), (10, 5120), (30, 6 * 3600)]:
        waits = {compute_backoff(attempts, policy, rng=rng).total_seconds() for _ in range(50)}
        assert all(ceiling / 2 <= w <= ceiling for w in waits), (attempts, waits)
        assert len(waits) > 40  # jittered: receivers that fell over together are not hit together


def test_retries_stop_when_the_three_day_window_closes() -> None:
    policy = RetryPolicy()
    due = datetime(2026, 11, 30, tzinfo=UTC)
    give_up = due + policy.window
    assert policy.window == timedelta(days=3)
    assert next_attempt(5, now=due + timedelta(days=2), give_up_at=give_up, policy=policy)
    assert next_attempt(40, now=give_up, give_up_at=give_up, policy=policy) is None


def test_signature_verifies_with_the_library_and_with_an_independent_hmac() -> None:
    body = build_body("email.sent", datetime.now(UTC), {"delivery_id": 1}, None)
    msg_id = new_event_id()
    at = datetime.now(UTC)
    headers = signed_headers(SECRET, msg_id=msg_id, at=at, body=body)
    assert Webhook(SECRET).verify(body, headers)["type"] == "email.sent"
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    signed = f"{msg_id}.{int(at.timestamp())}.{body}".encode()
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    assert headers["webhook-signature"] == f"v1,{expected}"
    assert headers["webhook-id"] == msg_id
    assert msg_id.startswith("evt_")
    assert len(msg_id) == 36


@pytest.mark.parametrize("secret", ["", "whsec_", "whsec_!!not base64!!"])
def test_an_unusable_secret_is_named(secret: str) -> None:
    with pytest.raises(SecretUnusable):
        signed_headers(secret, msg_id="evt_x", at=datetime.now(UTC), body="{}")


def test_only_contact_events_carry_the_address() -> None:
    contact = ContactRef(public_id="abc123", email="reader@example.com")
    at = datetime(2026, 11, 30, 4, 5, 6, 789000, tzinfo=UTC)
    for event_type in EVENT_TYPES:
        body = json.loads(build_body(event_type, at, {"sequence": "quick"}, contact))
        assert body["type"] == event_type
        assert body["timestamp"] == "2026-11-30T04:05:06.789Z"
        assert body["data"]["contact"]["id"] == "abc123"
        carries = "email" in body["data"]["contact"]
        assert carries == event_type.startswith("contact."), event_type
    erased = ContactRef(public_id="abc123", email=None)
    body = json.loads(build_body(EventType.CONTACT_UNSUBSCRIBED, at, {}, erased))
    assert body["data"]["contact"] == {"id": "abc123", "email": None}


def test_an_oversized_webhooks_file_is_refused_naming_it(tmp_path: Path) -> None:
    # The same bounded, alias-free read as the sequence files (drip.sequences.loader.read_yaml)
    (tmp_path / ENDPOINTS_FILE).write_text("# x\n" * 100_000)
    with pytest.raises(WebhookConfigError, match=r"larger than 256 KiB, the most webhooks\.yaml"):
        load_endpoints_file(tmp_path, development=True)
