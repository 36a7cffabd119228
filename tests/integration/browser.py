"""Debian's headless Chromium, driven through Debian's chromedriver, and a live API server."""

from __future__ import annotations

import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from drip.api.app import create_app
from drip.render.preview import CHROMIUM_FLAGS
from drip.runtime import Runtime
from drip.testing.threads import CheckedThread
from tests.conftest import require_tools, wait_for

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def live_server(runtime: Runtime, port: int) -> Iterator[str]:
    """The real API on 127.0.0.1:`port`, served by uvicorn in a thread."""
    server = uvicorn.Server(
        uvicorn.Config(create_app(runtime), host="127.0.0.1", port=port, log_config=None)
    )
    thread = CheckedThread(server.run, name="uvicorn")
    thread.start()
    try:
        wait_for(lambda: server.started, what="the API server")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def chromium() -> Iterator[object]:
    """A headless Chromium session; skipped locally without Chromium, failed under CI."""
    require_tools(CHROMIUM, CHROMEDRIVER, why="Debian's chromium and chromium-driver packages")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, "--window-size=900,1100", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    with tempfile.TemporaryDirectory() as profile:
        options.add_argument(f"--user-data-dir={profile}")
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        try:
            yield driver
        finally:
            driver.quit()
