"""Write emails as a subscriber gets them, for review: HTML, text, and a screenshot on request."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from drip.errors import DripError
from drip.render.renderer import RenderedEmail

#: Chromium flags for a quiet, offline, one-shot screenshot.
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
    """A PNG of `html_path` as headless Chromium renders it; raise DripError without Chromium."""
    chromium = find_chromium()
    if chromium is None:
        raise DripError("--png needs Chromium (Debian package `chromium`)")
    with tempfile.TemporaryDirectory() as profile:
        result = subprocess.run(
            [
                chromium,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={profile}",
                f"--window-size={width},{height}",
                f"--screenshot={png_path}",
                html_path.resolve().as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    if result.returncode != 0 or not png_path.exists():
        raise DripError(f"Chromium could not take the screenshot: {result.stderr.strip()[-500:]}")
    return png_path
