"""The landing page in a real browser: sign up, get email 1, unsubscribe with the button."""

from __future__ import annotations

import re

import dramatiq
import pytest
from selenium.webdriver.common.by import By

from drip.config import Settings
from drip.runtime import build_runtime
from drip.testing.fake_sendgrid import FakeSendGrid
from tests.conftest import ARTIFACTS, wait_for
from tests.integration.browser import chromium, free_port, live_server
from tests.integration.conftest import drain
from tests.integration.helpers import running_scheduler

pytestmark = pytest.mark.browser


def test_a_visitor_signs_up_gets_email_one_and_unsubscribes_in_chromium(
    settings: Settings, fake_sendgrid: FakeSendGrid
) -> None:
    port = free_port()
    runtime = build_runtime(settings.model_copy(update={"base_url": f"http://127.0.0.1:{port}"}))
    worker = dramatiq.Worker(runtime.broker, worker_threads=2, worker_timeout=50)
    worker.start()
    shots = ARTIFACTS / "browser"
    shots.mkdir(parents=True, exist_ok=True)
    try:
        with live_server(runtime, port) as base, chromium() as driver:
            # Given the landing page
            driver.get(base + "/")  # type: ignore[attr-defined]
            assert "Get the free executive resume template" in driver.page_source  # type: ignore[attr-defined]
            driver.save_screenshot(str(shots / "1-landing.png"))  # type: ignore[attr-defined]
            # When the visitor fills the form and submits it
            driver.find_element(By.ID, "email").send_keys("visitor@example.com")  # type: ignore[attr-defined]
            driver.find_element(By.ID, "first_name").send_keys("Vera")  # type: ignore[attr-defined]
            driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()  # type: ignore[attr-defined]
            # Then a thank-you page, and email 1 reaches the provider
            wait_for(lambda: "Check your inbox" in driver.page_source, what="the thank-you page")  # type: ignore[attr-defined]
            driver.save_screenshot(str(shots / "2-thank-you.png"))  # type: ignore[attr-defined]
            wait_for(lambda: fake_sendgrid.accepted, what="email 1")
            email_one = fake_sendgrid.accepted[0].payload
            assert email_one["subject"] == "Welcome, Vera"
            # When they open the unsubscribe link in the footer and press the button
            footer = re.search(
                r'href="(http://127\.0\.0\.1:\d+/unsubscribe/[^"]+)"',
                email_one["content"][1]["value"],
            )
            assert footer is not None
            driver.get(footer.group(1).replace("&amp;", "&"))  # type: ignore[attr-defined]
            driver.save_screenshot(str(shots / "3-unsubscribe.png"))  # type: ignore[attr-defined]
            driver.find_element(By.CSS_SELECTOR, "button[value=all]").click()  # type: ignore[attr-defined]
            # Then the confirmation shows, and nothing more is sent
            wait_for(lambda: "You are unsubscribed." in driver.page_source, what="the confirmation")  # type: ignore[attr-defined]
            driver.save_screenshot(str(shots / "4-unsubscribed.png"))  # type: ignore[attr-defined]
        with running_scheduler(runtime) as ticking:  # past the time email 2 was due
            ticking.wait_past_every_due_row(runtime)
            drain(runtime, worker)
        assert len(fake_sendgrid.accepted) == 1
        for name in ("1-landing", "2-thank-you", "3-unsubscribe", "4-unsubscribed"):
            assert (shots / f"{name}.png").stat().st_size > 5_000
    finally:
        worker.stop()
        runtime.close()
