"""Operators' commands and pages, on data the real pipeline produced."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import dramatiq
import pytest
from dramatiq import Message
from sqlalchemy import func, select, update
from typer.testing import CliRunner

from drip.cli.main import app
from drip.config import Settings
from drip.db import transaction, utcnow
from drip.models import AuditEntry, Delivery, DeliveryStatus
from drip.runtime import Runtime, build_runtime
from drip.send.actor import SEND_ACTOR, SEND_QUEUE
from drip.testing.fake_sendgrid import FakeSendGrid, Scripted
from tests.conftest import wait_for
from tests.integration.browser import chromium, free_port, live_server
from tests.integration.conftest import drain
from tests.integration.helpers import api_client, deliveries, running_scheduler
from tests.integration.test_processes import settings_env
from tests.integration.test_webhook import signed_post


@dataclass
class Ops:
    runtime: Runtime
    env: dict[str, str]
    fake: FakeSendGrid

    def drip(self, *args: str) -> tuple[int, str]:
        result = CliRunner().invoke(app, list(args), env=self.env)
        return result.exit_code, result.output


@pytest.fixture
def ops(
    runtime: Runtime, worker: dramatiq.Worker, fake_sendgrid: FakeSendGrid, settings: Settings
) -> Iterator[Ops]:
    """Four subscribers through the real pipeline: one complete with events, one unsubscribed after
    email 1, one whose email 1 the provider refused, one in progress."""
    client = api_client(runtime)
    client.post("/signups", json={"email": "ada@example.com", "first_name": "Ada"})
    wait_for(lambda: fake_sendgrid.accepted, what="ada's first email")
    fake_sendgrid.script([Scripted(400, body={"errors": [{"message": "Invalid to address"}]})])
    client.post("/signups", json={"email": "bob@example.com", "first_name": "Bob"})
    wait_for(lambda: len(fake_sendgrid.requests) >= 2, what="bob's refused attempt")
    drain(runtime, worker)
    client.post("/signups", json={"email": "cy@example.com"})
    with running_scheduler(runtime):
        wait_for(
            lambda: (
                len(
                    [
                        a
                        for a in fake_sendgrid.accepted
                        if a.payload["personalizations"][0]["to"][0]["email"]
                        in ("ada@example.com", "cy@example.com")
                    ]
                )
                >= 6
            ),
            timeout=20,
            what="two complete runs",
        )
        drain(runtime, worker)
    ada = [
        a
        for a in fake_sendgrid.accepted
        if a.payload["personalizations"][0]["to"][0]["email"] == "ada@example.com"
    ]
    events = [
        {
            "event": kind,
            "sg_event_id": f"{kind}-{a.delivery_id}",
            "delivery_id": a.delivery_id,
            "email": "ada@example.com",
            "timestamp": 1700000000 + n,
        }
        for n, a in enumerate(ada)
        for kind in ("processed", "delivered", "open")
    ]
    events.append(
        {
            "event": "click",
            "sg_event_id": "c1",
            "delivery_id": ada[0].delivery_id,
            "url": "https://x.test/d",
            "email": "ada@example.com",
            "timestamp": 1700000100,
        }
    )
    assert signed_post(runtime, events).status_code == 200
    cy_unsubscribe = (
        next(
            a
            for a in fake_sendgrid.accepted
            if a.payload["personalizations"][0]["to"][0]["email"] == "cy@example.com"
        )
        .payload["headers"]["List-Unsubscribe"]
        .strip("<>")
    )
    client.post(cy_unsubscribe, data={"List-Unsubscribe": "One-Click"})
    client.post("/signups", json={"email": "dee@example.com"})
    drain(runtime, worker)
    return Ops(runtime, settings_env(settings), fake_sendgrid)


def test_contacts_show_tells_what_happened_to_a_subscriber(ops: Ops) -> None:
    code, out = ops.drip("contacts", "show", "ada@example.com")
    assert code == 0, out
    for text in (
        "ada@example.com",
        "status: active",
        "welcome",
        "second",
        "third",
        "delivered",
        "open",
        "click",
    ):
        assert text in out
    code, out = ops.drip("contacts", "show", "ada@example.com", "--json")
    timeline = json.loads(out)
    assert [d["step"] for d in timeline["deliveries"]] == ["welcome", "second", "third"]
    assert all(d["provider_message_id"] and d["sequence_version"] for d in timeline["deliveries"])
    assert ops.drip("contacts", "show", "nobody@example.com")[0] == 1


def test_resend_sends_a_step_again_and_is_refused_after_an_unsubscribe(
    ops: Ops, worker: dramatiq.Worker
) -> None:
    code, out = ops.drip(
        "resend",
        "ada@example.com",
        "--step",
        "welcome",
        "--sequence",
        "quick",
        "--reason",
        "lost the template",
        "--by",
        "oncall",
    )
    assert code == 0, out
    drain(ops.runtime, worker)
    resent = [d for d in deliveries(ops.runtime) if d.resend]
    assert [(d.step_id, d.status) for d in resent] == [("welcome", DeliveryStatus.SENT)]
    assert len(ops.fake.accepted_for(resent[0].id)) == 1
    code, out = ops.drip(
        "resend", "cy@example.com", "--step", "welcome", "--sequence", "quick", "--reason", "x"
    )
    assert code == 1
    assert "refused: the contact is unsubscribed (unsubscribe link)" in out
    with ops.runtime.sessions() as session:
        audit = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "delivery.resend")
        ).one()
    assert (audit.operator, audit.reason) == ("oncall", "lost the template")


def test_retry_requeues_failed_rows_once(ops: Ops, worker: dramatiq.Worker) -> None:
    (failed,) = [d.id for d in deliveries(ops.runtime) if d.status is DeliveryStatus.FAILED]
    assert (
        "1 delivery would be retried"
        in ops.drip("retry", "--dry-run", "--reason", "provider fixed")[1]
    )
    code, out = ops.drip(
        "retry", "--since", "1h", "--sequence", "quick", "--reason", "provider fixed"
    )
    assert (code, "1 delivery re-queued" in out) == (0, True)
    wait_for(lambda: ops.fake.accepted_for(failed), what="the retried email")
    drain(ops.runtime, worker)
    row = next(d for d in deliveries(ops.runtime) if d.id == failed)
    assert (row.status, row.attempts, row.error) == (DeliveryStatus.SENT, 1, None)
    assert "nothing to retry" in ops.drip("retry", "--reason", "again")[1]


def test_retry_works_through_thousands_of_rows_in_chunks(ops: Ops) -> None:
    # Given 2,000 failed rows (a provider outage)
    with transaction(ops.runtime.sessions) as session:
        enrollment_id, contact_id = session.execute(
            select(Delivery.enrollment_id, Delivery.contact_id)
        ).first()
        session.add_all(
            [
                Delivery(
                    enrollment_id=enrollment_id,
                    contact_id=contact_id,
                    sequence_id="quick",
                    step_id="welcome",
                    resend=True,
                    resend_number=100 + n,
                    status=DeliveryStatus.FAILED,
                    due_at=utcnow(),
                    error="503",
                )
                for n in range(2000)
            ]
        )
    code, out = ops.drip("retry", "--reason", "outage over")
    assert code == 0, out
    assert "2001 deliveries re-queued" in out
    with ops.runtime.sessions() as session:
        assert (
            session.scalar(select(func.count()).where(Delivery.status == DeliveryStatus.FAILED))
            == 0
        )
        audits = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "delivery.retry")
        ).all()
    assert sum(len(a.details["delivery_ids"]) for a in audits) == 2001
    assert len(audits) == 5  # chunks of 500


def test_deliveries_list_filters(ops: Ops) -> None:
    code, out = ops.drip("deliveries", "list", "--status", "failed", "--json")
    rows = json.loads(out)
    assert [(r["step"], r["status"]) for r in rows] == [("welcome", "failed")]
    assert "Invalid to address" in rows[0]["note"]
    code, out = ops.drip("deliveries", "list", "--step", "third", "--since", "1h")
    assert code == 0
    assert out.count("third") == 2


def test_stats_give_the_funnel_per_step_and_the_scheduler_lag(ops: Ops) -> None:
    code, out = ops.drip("stats", "--json", "--since", "1d")
    assert code == 0, out
    report = json.loads(out)
    welcome = next(s for s in report["steps"] if s["step"] == "welcome")
    # ada, cy and dee got email 1; bob's was refused
    assert (
        welcome["sent"],
        welcome["delivered"],
        welcome["opened"],
        welcome["clicked"],
        welcome["failed"],
    ) == (3, 1, 1, 1, 1)
    assert welcome["unsubscribed"] == 0
    assert welcome["opened_rate"] == round(1 / 3, 4)
    third = next(s for s in report["steps"] if s["step"] == "third")
    assert third["unsubscribed"] == 1  # cy left after the last email
    assert report["scheduler"]["lag_seconds"] >= 0
    code, out = ops.drip("stats")
    assert "funnel" in out
    assert "scheduler lag" in out


def test_dead_letters_are_listed_and_requeued(ops: Ops) -> None:
    broker = ops.runtime.broker
    # A message Dramatiq gives up on at once (its argument is not a delivery id)
    broker.enqueue(
        Message(
            queue_name=SEND_QUEUE,
            actor_name=SEND_ACTOR,
            args=("not-an-id",),
            kwargs={},
            options={"max_retries": 0},
        )
    )
    wait_for(lambda: "not-an-id" in ops.drip("dead-letters", "--json")[1], what="the dead letter")
    assert ops.drip("dead-letters", "--requeue")[0] == 2  # a reason is required
    code, out = ops.drip("dead-letters", "--requeue", "--reason", "after the fix")
    assert (code, "1 message(s) re-queued" in out) == (0, True)


#: A metrics token of the accepted length.
METRICS_TOKEN = "m" * 32

#: An admin token of the accepted length.
ADMIN_TOKEN = "a-long-admin-token-for-the-tests-0123456789"


def test_metrics_and_health_report_the_pipeline(ops: Ops) -> None:
    ops.runtime.settings = ops.runtime.settings.model_copy(update={"metrics_token": METRICS_TOKEN})
    client = api_client(ops.runtime)
    metrics = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}).text
    assert "drip_signups_total " in metrics
    assert 'drip_deliveries_total{outcome="sent",sequence="quick",step="welcome"}' in metrics
    assert "drip_provider_latency_seconds_bucket" in metrics
    assert 'drip_webhook_events_total{event="open"}' in metrics
    assert "drip_scheduler_lag_seconds " in metrics
    assert 'drip_queue_depth{queue="drip.send"}' in metrics
    health = client.get("/healthz").json()
    assert health["checks"]["database"] == "ok"
    assert health["checks"]["redis"] == "ok"
    assert health["checks"]["scheduler"]["status"] == "ok"
    # A due row nobody claims for ten minutes makes the scheduler "lagging"
    with transaction(ops.runtime.sessions) as session:
        session.execute(
            update(Delivery)
            .where(Delivery.status == DeliveryStatus.SCHEDULED)
            .values(due_at=utcnow() - timedelta(minutes=10))
        )
    health = client.get("/healthz").json()
    assert health["status"] == "degraded"
    assert health["checks"]["scheduler"]["status"] == "lagging"
    assert health["checks"]["scheduler"]["lag_seconds"] >= 600


@pytest.mark.browser
def test_the_admin_page_needs_its_token_and_shows_the_funnel_in_chromium(
    ops: Ops, settings: Settings
) -> None:
    assert api_client(ops.runtime).get("/admin").status_code == 404  # no token configured: off
    port = free_port()
    rt = build_runtime(
        settings.model_copy(
            update={"admin_token": ADMIN_TOKEN, "base_url": f"http://127.0.0.1:{port}"}
        )
    )
    try:
        client = api_client(rt)
        assert client.get("/admin").status_code == 401
        assert client.get("/admin", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get(f"/admin?token={ADMIN_TOKEN}").status_code == 401  # never from a URL
        page = client.get("/admin", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        assert page.status_code == 200
        assert "<svg" in page.text
        assert "Invalid to address" in page.text
        assert ADMIN_TOKEN not in page.text
        from selenium.webdriver.common.by import By

        from tests.conftest import ARTIFACTS

        shots = ARTIFACTS / "admin"
        shots.mkdir(parents=True, exist_ok=True)
        with live_server(rt, port) as base, chromium() as driver:
            # A person signs in through the form; the cookie it sets carries the session
            driver.get(base + "/admin")  # type: ignore[attr-defined]
            driver.find_element(By.ID, "token").send_keys(ADMIN_TOKEN)  # type: ignore[attr-defined]
            driver.find_element(By.CSS_SELECTOR, "form button").click()  # type: ignore[attr-defined]
            wait_for(lambda: "<svg" in driver.page_source, what="the funnel page")
            assert driver.current_url == base + "/admin"  # type: ignore[attr-defined]
            assert driver.find_element(By.TAG_NAME, "svg").is_displayed()  # type: ignore[attr-defined]
            # The page's own stylesheet applies under its Content-Security-Policy
            main = driver.find_element(By.TAG_NAME, "main")  # type: ignore[attr-defined]
            assert main.value_of_css_property("max-width") == "960px"
            driver.save_screenshot(str(shots / "funnel.png"))  # type: ignore[attr-defined]
            driver.find_element(By.ID, "email").send_keys("ada@example.com")  # type: ignore[attr-defined]
            driver.find_element(By.CSS_SELECTOR, "form button").click()  # type: ignore[attr-defined]
            wait_for(
                lambda: "<h1>ada@example.com</h1>" in driver.page_source, what="the timeline page"
            )
            assert driver.current_url == base + "/admin/contact"  # type: ignore[attr-defined]
            driver.save_screenshot(str(shots / "timeline.png"))  # type: ignore[attr-defined]
            console = driver.get_log("browser")  # type: ignore[attr-defined]
            assert not [e for e in console if "Content Security Policy" in e["message"]], console
        assert (shots / "funnel.png").stat().st_size > 10_000
    finally:
        rt.close()
