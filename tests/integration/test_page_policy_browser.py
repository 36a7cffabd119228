"""The pages' Content-Security-Policy in a real browser: their stylesheets apply, nothing is
blocked that the page needs, and a page cannot be framed."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from selenium.webdriver.common.by import By

from drip.runtime import Runtime
from tests.conftest import ARTIFACTS, wait_for
from tests.integration.browser import chromium, free_port, live_server


@contextmanager
def framing_site(target: str) -> Iterator[str]:
    """A page on another loopback origin that puts `target` in an iframe."""
    page = f"<!DOCTYPE html><iframe id=f src='{target}' width=600 height=400></iframe>".encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        thread.join(timeout=10)


pytestmark = pytest.mark.browser


def test_the_signup_page_is_styled_under_its_policy_and_refuses_framing(runtime: Runtime) -> None:
    port = free_port()
    shots = ARTIFACTS / "policy"
    shots.mkdir(parents=True, exist_ok=True)
    with live_server(runtime, port) as base, chromium() as driver:
        # Given the signup page, served with a policy that allows only its nonced stylesheet
        driver.get(base + "/")  # type: ignore[attr-defined]
        # Then its stylesheet applies (the button's colour, the form's width)
        button = driver.find_element(By.CSS_SELECTOR, "button[type=submit]")  # type: ignore[attr-defined]
        assert button.value_of_css_property("background-color") == "rgba(20, 33, 61, 1)"
        main = driver.find_element(By.TAG_NAME, "main")  # type: ignore[attr-defined]
        assert main.value_of_css_property("max-width") == "544px"  # 34rem
        driver.save_screenshot(str(shots / "signup.png"))  # type: ignore[attr-defined]
        # When another site (another origin on this machine) frames the page
        with framing_site(base + "/") as site:
            driver.get(site)  # type: ignore[attr-defined]
            wait_for(lambda: driver.find_elements(By.ID, "f"), what="the framing page")  # type: ignore[attr-defined]

            def framed() -> str:
                driver.switch_to.frame(driver.find_element(By.ID, "f"))  # type: ignore[attr-defined]
                try:
                    loaded = driver.execute_script(  # type: ignore[attr-defined]
                        "return document.readyState == 'complete' && location.href != 'about:blank'"
                    )
                    return str(driver.page_source) if loaded else ""  # type: ignore[attr-defined]
                finally:
                    driver.switch_to.default_content()  # type: ignore[attr-defined]

            # Then the browser shows its own error page in the frame, not the form
            source = wait_for(framed, what="the frame to settle")
            driver.save_screenshot(str(shots / "framed.png"))  # type: ignore[attr-defined]
            assert "Get the free executive resume template" not in source
            assert 'id="email"' not in source
