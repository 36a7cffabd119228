"""Write emails as a subscriber gets them, for review: HTML, text, and a screenshot on request.

A preview's HTML comes from sequence files, so the screenshot treats it as hostile: Chromium
loads it with scripts off (the DevTools setting, as `--screenshot` cannot) and with no way
to the network (every request goes to a proxy address where nothing listens, loopback
included, and no host name resolves), so a template can neither run code nor call out
(a tracking pixel, a request to a service on the machine) while it is previewed.
"""

from __future__ import annotations

import base64
import shutil
import tempfile
from pathlib import Path
from typing import IO

from drip.errors import DripError
from drip.render.devtools import DevToolsError, DevToolsPipe
from drip.render.renderer import RenderedEmail

#: Chromium flags for a quiet, one-shot headless browser.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)

#: What cuts a preview off the network: a proxy on the discard port of loopback, where
#: nothing listens, for every URL (`<-loopback>` removes the implicit bypass of
#: localhost), and a resolver that finds no host.
OFFLINE_FLAGS = (
    "--proxy-server=127.0.0.1:9",
    "--proxy-bypass-list=<-loopback>",
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--dns-prefetch-disable",
    "--disable-features=NetworkPrediction",
)

#: Seconds Chromium gets for each step of a screenshot.
SCREENSHOT_TIMEOUT = 60.0


def write_preview(email: RenderedEmail, out: Path, stem: str) -> tuple[Path, Path]:
    """Write `<stem>.html` and `<stem>.txt` (subject on the text's first line) into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    html_path, text_path = out / f"{stem}.html", out / f"{stem}.txt"
    html_path.write_text(email.html, encoding="utf-8")
    text_path.write_text(f"Subject: {email.subject}\n\n{email.text}", encoding="utf-8")
    return html_path, text_path


def find_chromium() -> str | None:
    """Debian's Chromium, if installed."""
    return next(
        (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
    )


def screenshot(html_path: Path, png_path: Path, *, width: int = 680, height: int = 2200) -> Path:
    """A PNG of `html_path` as headless Chromium renders it with scripts off and no network;
    raise DripError without Chromium or when it fails."""
    chromium = find_chromium()
    if chromium is None:
        raise DripError("--png needs Chromium (Debian package `chromium`)")
    with tempfile.TemporaryDirectory() as profile:
        log_path = Path(profile) / "chromium.log"
        with log_path.open("wb") as log:
            try:
                png = _capture(chromium, profile, html_path, log, width=width, height=height)
            except DevToolsError as exc:
                log.flush()
                stderr = log_path.read_text(errors="replace").strip()[-500:]
                raise DripError(f"Chromium could not take the screenshot: {exc}; {stderr}") from exc
    png_path.write_bytes(png)
    return png_path


def _capture(
    chromium: str, profile: str, html_path: Path, log: IO[bytes], *, width: int, height: int
) -> bytes:
    command = [chromium, *CHROMIUM_FLAGS, *OFFLINE_FLAGS, f"--user-data-dir={profile}"]
    with DevToolsPipe(command, log=log, timeout=SCREENSHOT_TIMEOUT) as browser:
        target = browser.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        page = browser.call("Target.attachToTarget", {"targetId": target, "flatten": True})
        session = page["sessionId"]
        browser.call("Emulation.setScriptExecutionDisabled", {"value": True}, session)
        browser.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
            session,
        )
        browser.call("Page.enable", {}, session)
        browser.call("Page.navigate", {"url": html_path.resolve().as_uri()}, session)
        browser.wait_for("Page.loadEventFired", session)
        shot = browser.call("Page.captureScreenshot", {"format": "png"}, session)
    return base64.b64decode(shot["data"])
