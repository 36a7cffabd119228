"""What a stranger on the internet can reach: headers, metrics, the admin page, signups,
and an API that stays responsive while a request waits on a row lock."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, select

from drip.api.app import create_app
from drip.api.signups import MAX_SIGNUP_BYTES
from drip.config import Environment, Settings
from drip.models import Contact
from drip.runtime import Runtime, build_runtime
from tests.conftest import wait_for
from tests.integration.browser import free_port, live_server
from tests.integration.conftest import WEBHOOK_KEYS
from tests.integration.helpers import api_client

#: Tokens of the accepted length.
METRICS_TOKEN = "metrics-token-for-the-tests-0123456789"
ADMIN_TOKEN = "admin-token-for-the-tests-0123456789abc"


@pytest.fixture
def guarded(settings: Settings) -> Iterator[Runtime]:
    """A runtime with the admin page and /metrics turned on."""
    rt = build_runtime(
        settings.model_copy(update={"admin_token": ADMIN_TOKEN, "metrics_token": METRICS_TOKEN})
    )
    yield rt
    rt.close()


def _subscriber(runtime: Runtime, email: str = "pat@example.com") -> str:
    """Sign `email` up through the API; return its unsubscribe token."""
    assert api_client(runtime).post("/signups", json={"email": email}).status_code == 202
    with runtime.sessions() as session:
        public_id = session.scalars(select(Contact.public_id).where(Contact.email == email)).one()
    return runtime.signer.sign(public_id)


# --- /metrics -------------------------------------------------------------------------------


def test_metrics_are_off_without_a_token_and_refused_without_the_right_one(
    runtime: Runtime, guarded: Runtime
) -> None:
    assert api_client(runtime).get("/metrics").status_code == 404
    client = api_client(guarded)
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer x" * 40}).status_code == 401
    assert client.get(f"/metrics?token={METRICS_TOKEN}").status_code == 401
    scrape = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert scrape.status_code == 200
    assert "drip_scheduler_lag_seconds" in scrape.text


def test_a_scrape_cannot_tell_a_known_address_or_a_trapped_bot_from_a_new_signup(
    guarded: Runtime,
) -> None:
    # Given a subscriber who is already on the list
    client = api_client(guarded)
    client.post("/signups", json={"email": "known@example.com"})
    auth = {"Authorization": f"Bearer {METRICS_TOKEN}"}

    def signup_lines() -> list[str]:
        text = client.get("/metrics", headers=auth).text
        return [line for line in text.splitlines() if line.startswith("drip_signups")]

    # When a stranger signs up a new address, the known one, and fills the honeypot
    changes = []
    for body in (
        {"email": "new@example.com"},
        {"email": "known@example.com"},
        {"email": "bot@example.com", "website": "http://spam.example"},
    ):
        before = signup_lines()
        assert client.post("/signups", data=body).status_code == 202
        after = signup_lines()
        changes.append([line for line in after if line not in before])
    # Then each moved the same one unlabelled counter, and no label names an outcome
    assert [[re.sub(r" [0-9.e+]+$", "", line) for line in c] for c in changes] == [
        ["drip_signups_total"]
    ] * 3
    text = client.get("/metrics", headers=auth).text
    assert "outcome=" not in text.split("drip_deliveries_total")[0]
    assert "honeypot" not in text
    assert "unchanged" not in text


def test_a_scrape_reads_the_shared_state_at_most_once_per_few_seconds(guarded: Runtime) -> None:
    statements: list[str] = []
    event.listen(
        guarded.engine, "before_cursor_execute", lambda *a: statements.append(a[2]), named=False
    )
    client = api_client(guarded)
    auth = {"Authorization": f"Bearer {METRICS_TOKEN}"}
    for _ in range(5):
        assert "drip_deliveries_pending" in client.get("/metrics", headers=auth).text
    assert len([s for s in statements if "GROUP BY" in s]) == 1


# --- security headers -----------------------------------------------------------------------


def _html_pages(runtime: Runtime) -> dict[str, httpx.Response]:
    token = _subscriber(runtime)
    client = api_client(runtime)
    return {
        "signup": client.get("/"),
        "thanks": client.post(
            "/signups", data={"email": "a@example.com"}, headers={"Accept": "text/html"}
        ),
        "unsubscribe": client.get(f"/unsubscribe/{token}"),
        "unsubscribed": client.post(f"/unsubscribe/{token}"),
        "bad link": client.get("/unsubscribe/not-a-token"),
        "confirm": client.get("/confirm/quick/not-a-token"),
        "download": client.get("/download/quick/not-a-token"),
        "admin login": client.get("/admin"),
        "admin": client.get("/admin", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}),
        "timeline": client.post(
            "/admin/contact",
            data={"email": "pat@example.com"},
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        ),
    }


def test_every_html_page_carries_a_policy_without_script_and_refuses_framing(
    guarded: Runtime,
) -> None:
    for name, response in _html_pages(guarded).items():
        assert response.headers["content-type"].startswith("text/html"), name
        policy = response.headers["content-security-policy"]
        assert "default-src 'none'" in policy, name
        assert "frame-ancestors 'none'" in policy, name
        assert "unsafe-inline" not in policy, name
        assert "script-src" not in policy, name
        assert response.headers["x-content-type-options"] == "nosniff", name
        assert response.headers["referrer-policy"] == "no-referrer", name
        # Every inline stylesheet carries the nonce the policy allows, and there is no script
        nonce = re.search(r"'nonce-([^']+)'", policy)
        assert nonce is not None, name
        assert re.findall(r"<style[^>]*>", response.text) == [f'<style nonce="{nonce[1]}">'] * len(
            re.findall(r"<style", response.text)
        ), name
        assert "<script" not in response.text, name
        assert " style=" not in response.text, name


def test_pages_with_personal_data_or_a_token_in_their_url_are_never_stored(
    guarded: Runtime,
) -> None:
    pages = _html_pages(guarded)
    for name in ("unsubscribe", "unsubscribed", "confirm", "admin", "timeline", "admin login"):
        assert pages[name].headers["cache-control"] == "no-store", name
    assert "no-store" not in pages["signup"].headers.get("cache-control", "")


def test_the_api_docs_are_off_in_production(runtime: Runtime) -> None:
    assert api_client(runtime).get("/docs").status_code == 200
    assert api_client(runtime).get("/openapi.json").status_code == 200
    runtime.settings = runtime.settings.model_copy(update={"env": Environment.PRODUCTION})
    production = api_client(runtime)
    for path in ("/docs", "/openapi.json", "/redoc"):
        assert production.get(path).status_code == 404, path


# --- the admin page -------------------------------------------------------------------------


def test_signing_in_sets_a_strict_httponly_cookie_and_lookups_are_posted(
    guarded: Runtime,
) -> None:
    _subscriber(guarded)
    client = api_client(guarded)  # https://drip.test
    assert client.post("/admin/login", data={"token": "wrong"}).status_code == 401
    signed_in = client.post("/admin/login", data={"token": ADMIN_TOKEN})
    assert (signed_in.status_code, signed_in.headers["location"]) == (303, "/admin")
    cookie = signed_in.headers["set-cookie"]
    assert ADMIN_TOKEN not in cookie
    for flag in ("HttpOnly", "Secure", "SameSite=strict", "Path=/admin"):
        assert flag.lower() in cookie.lower(), flag
    funnel = client.get("/admin")
    assert funnel.status_code == 200
    assert "Funnel" in funnel.text
    assert ADMIN_TOKEN not in funnel.text
    assert '<form method="post" action="/admin/contact">' in funnel.text
    timeline = client.post("/admin/contact", data={"email": "pat@example.com"})
    assert "<h1>pat@example.com</h1>" in timeline.text
    # The address never travels in a URL, and the old GET lookup is gone
    assert client.get("/admin/contact?email=pat%40example.com").status_code == 405
    # A session cookie from another token, or a forged one, is refused
    client.cookies.set("drip_admin", "admin.forged.cookie", domain="drip.test", path="/admin")
    assert client.get("/admin").status_code == 401
    assert client.post("/admin/logout").status_code == 303


def test_the_cookie_is_not_secure_only_over_plain_http_on_loopback(settings: Settings) -> None:
    rt = build_runtime(
        settings.model_copy(update={"admin_token": ADMIN_TOKEN, "base_url": "http://127.0.0.1"})
    )
    try:
        client = TestClient(create_app(rt), base_url="http://127.0.0.1", follow_redirects=False)
        cookie = client.post("/admin/login", data={"token": ADMIN_TOKEN}).headers["set-cookie"]
    finally:
        rt.close()
    assert "secure" not in cookie.lower()
    assert "httponly" in cookie.lower()


# --- signups --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "URGENT: verify your bank",
        "Ann evil.example",
        "see https://evil.example/login",
        "a@b",
        "Ann/Bob",
        "Ann2",
        "x" * 51,
        "Vic\r\nBcc: x@evil.test",
    ],
)
def test_a_name_that_is_not_a_name_gets_422_naming_the_field(runtime: Runtime, name: str) -> None:
    for post in (
        {"json": {"email": "n@example.com", "first_name": name}},
        {"data": {"email": "n@example.com", "first_name": name}},
    ):
        response = api_client(runtime).post("/signups", **post)  # type: ignore[arg-type]
        assert response.status_code == 422, name
        assert response.json()["detail"][0]["loc"] == ["body", "first_name"]
    with runtime.sessions() as session:
        assert session.scalars(select(Contact)).all() == []


@pytest.mark.parametrize("name", ["Ann", "María José", "O'Brien", "Jean-Luc", "J. R.", "Zoë", "李"])
def test_names_people_have_are_accepted(runtime: Runtime, name: str) -> None:
    response = api_client(runtime).post(
        "/signups", json={"email": "n@example.com", "first_name": name}
    )
    assert response.status_code == 202


def test_a_body_over_the_cap_gets_413_and_a_deep_one_gets_422(runtime: Runtime) -> None:
    client = api_client(runtime)
    deep = client.post(
        "/signups", content=b"[" * 200_000, headers={"Content-Type": "application/json"}
    )
    assert deep.status_code == 413
    assert str(MAX_SIGNUP_BYTES) in deep.json()["detail"]
    big_form = client.post("/signups", data={"email": "a@example.com", "source": "x" * 20_000})
    assert big_form.status_code == 413
    # Within the cap, nesting that would exhaust the parser's recursion is a plain 422
    nested = client.post(
        "/signups", content=b"[" * 10_000, headers={"Content-Type": "application/json"}
    )
    assert nested.status_code == 422
    assert nested.json()["detail"][0]["type"] == "json_invalid"
    broken_multipart = client.post(
        "/signups",
        content=b"--x\r\nContent-Disposition: form-data\r\n\r\nno name\r\n",
        headers={"Content-Type": "multipart/form-data; boundary=x"},
    )
    assert broken_multipart.status_code == 422


def test_the_per_ip_limit_is_counted_before_the_body_is_read(settings: Settings) -> None:
    # Given a limit of one signup a minute per IP, already used
    rt = build_runtime(settings.model_copy(update={"signup_rate_per_ip": "1/minute"}))
    app = create_app(rt)
    try:
        assert api_client(rt).post("/signups", json={"email": "a@example.com"}).status_code == 202
        # When the same client sends another, its body is never received
        received: list[bool] = []
        sent: list[dict[str, object]] = []

        async def receive() -> dict[str, object]:
            received.append(True)
            return {"type": "http.request", "body": b'{"email": "b@example.com"}'}

        async def send(message: dict[str, object]) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "https",
            "path": "/signups",
            "raw_path": b"/signups",
            "query_string": b"",
            "root_path": "",
            "headers": [(b"content-type", b"application/json"), (b"host", b"drip.test")],
            "client": ("testclient", 50000),
            "server": ("drip.test", 443),
            "state": {},
        }
        import anyio

        anyio.run(app, scope, receive, send)
    finally:
        rt.close()
    # Then it is refused with 429 without a byte of the body read
    assert sent[0]["status"] == 429
    assert received == []


def _signup_from(client: TestClient, forwarded_for: str | None, email: str) -> int:
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    return client.post("/signups", json={"email": email}, headers=headers).status_code


def test_forwarded_for_counts_only_from_a_trusted_proxy(settings: Settings) -> None:
    rt = build_runtime(
        settings.model_copy(
            update={"signup_rate_per_ip": "2/minute", "trusted_proxies": "10.0.0.0/8"}
        )
    )
    try:
        app = create_app(rt)
        proxy = TestClient(app, base_url="https://drip.test", client=("10.0.0.2", 4000))
        stranger = TestClient(app, base_url="https://drip.test", client=("203.0.113.9", 4000))
        # Behind the proxy, each visitor has a bucket of their own, whatever they claim first
        for n in range(2):
            assert _signup_from(proxy, f"6.6.6.6, 198.51.100.{n}", f"v{n}@example.com") == 202
            assert _signup_from(proxy, f"6.6.6.6, 198.51.100.{n}", f"w{n}@example.com") == 202
        assert _signup_from(proxy, "1.2.3.4, 198.51.100.0", "x@example.com") == 429
        assert _signup_from(proxy, "198.51.100.7", "y@example.com") == 202
        # A client that is not a trusted proxy cannot pick its bucket by claiming another address
        assert _signup_from(stranger, "198.51.100.50", "s1@example.com") == 202
        assert _signup_from(stranger, "198.51.100.51", "s2@example.com") == 202
        assert _signup_from(stranger, "198.51.100.52", "s3@example.com") == 429
    finally:
        rt.close()


# --- a lock never freezes the API -----------------------------------------------------------


def _waiting_on_a_lock(database_url: str) -> bool:
    with psycopg.connect(database_url, autocommit=True) as connection:
        row = connection.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        ).fetchone()
    return bool(row and row[0])


def _healthz_answers_while_waiting(
    base: str, database_url: str, holder: psycopg.Connection, post: Callable[[], int]
) -> int:
    """Run `post` (a request that will wait on `holder`'s lock) in a thread; check /healthz
    answers at once meanwhile; release the lock; return the status `post` finally got."""
    outcome: dict[str, int] = {}
    thread = threading.Thread(target=lambda: outcome.update(status=post()), daemon=True)
    thread.start()
    wait_for(lambda: _waiting_on_a_lock(database_url), what="the request to wait on the lock")
    # The machine is shared, so one request may be scheduled late: up to ten tries, one within
    # 100 ms suffices (with the event loop blocked, the first waits out its whole timeout)
    timings: list[float] = []
    while len(timings) < 10 and not (timings and min(timings) < 0.1):
        started = time.perf_counter()
        try:
            health = httpx.get(f"{base}/healthz", timeout=2)
        except httpx.TimeoutException:
            pytest.fail("/healthz waited with the locked request: the event loop is blocked")
        timings.append(time.perf_counter() - started)
        assert health.status_code == 200
    assert min(timings) < 0.1, timings
    assert "status" not in outcome  # still waiting
    holder.rollback()
    thread.join(timeout=30)
    return outcome["status"]


def test_healthz_answers_at_once_while_an_unsubscribe_waits_on_the_contact_lock(
    runtime: Runtime, database_url: str
) -> None:
    # Given a subscriber whose contact row is locked, as a send batch locks it across its
    # provider calls
    token = _subscriber(runtime)
    with psycopg.connect(database_url) as holder, live_server(runtime, free_port()) as base:
        holder.execute("SELECT id FROM contacts WHERE email = %s FOR UPDATE", ("pat@example.com",))

        # When the subscriber presses one-click unsubscribe, which waits for that lock
        def unsubscribe() -> int:
            return httpx.post(
                f"{base}/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"}, timeout=30
            ).status_code

        # Then the same API process answers /healthz at once, and the unsubscribe completes
        # once the lock is released
        assert _healthz_answers_while_waiting(base, database_url, holder, unsubscribe) == 200
    with runtime.sessions() as session:
        assert session.scalars(select(Contact.status)).one().value == "unsubscribed"


def test_healthz_answers_at_once_while_a_webhook_batch_waits_to_be_stored(
    runtime: Runtime, database_url: str
) -> None:
    # Given the events table locked against writes
    body = json.dumps([{"event": "open", "sg_event_id": "locked-1"}]).encode()
    with psycopg.connect(database_url) as holder, live_server(runtime, free_port()) as base:
        holder.execute("LOCK TABLE provider_events IN EXCLUSIVE MODE")

        # When SendGrid posts a signed batch, whose insert waits for that lock
        def post_events() -> int:
            return httpx.post(
                f"{base}/webhooks/sendgrid",
                content=body,
                headers=WEBHOOK_KEYS.headers(body),
                timeout=30,
            ).status_code

        # Then /healthz still answers at once, and the batch is stored once the lock goes
        assert _healthz_answers_while_waiting(base, database_url, holder, post_events) == 200
