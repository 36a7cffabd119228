"""`drip sequences preview --png` runs marketer HTML in Chromium with scripts off and no network."""

from __future__ import annotations

import struct
import threading
import urllib.request
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from drip.render.preview import screenshot
from tests.conftest import require_tools

pytestmark = pytest.mark.browser


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[str]]]:
    """A local server standing in for the outside world; lists every path asked of it."""
    asked: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        urllib.request.urlopen(f"{base}/reachable", timeout=5).close()
        assert asked == ["/reachable"]  # the receiver works, so silence below means something
        asked.clear()
        yield base, asked
    finally:
        server.shutdown()
        thread.join(timeout=5)


def needs_chromium() -> None:
    require_tools("chromium", why="Debian's chromium package")


def test_the_screenshot_runs_no_script_and_reaches_no_server(
    tmp_path: Path, receiver: tuple[str, list[str]]
) -> None:
    needs_chromium()
    base, asked = receiver
    port = base.rsplit(":", 1)[1]
    # Given an email whose HTML paints the page red from a script and loads remote content
    html = tmp_path / "email.html"
    html.write_text(
        f"""<!DOCTYPE html><html><head>
<link rel="stylesheet" href="{base}/style.css">
<script src="{base}/script.js"></script>
</head><body style="background: #ffffff; margin: 0">
<p>A preview</p>
<img src="{base}/pixel.png" width="1" height="1">
<img src="http://localhost:{port}/by-name.png" width="1" height="1">
<script>
  document.body.style.background = "rgb(255, 0, 0)";
  new Image().src = "{base}/from-script";
</script>
</body></html>"""
    )
    # When it is previewed as a screenshot
    png = screenshot(html, tmp_path / "email.png", width=200, height=200)
    # Then no script ran: the page is still white
    assert pixel(png.read_bytes(), 150, 150)[:3] == (255, 255, 255)
    # And nothing was fetched from the network, loopback included
    assert asked == []


def pixel(png: bytes, x: int, y: int) -> tuple[int, ...]:
    """The channels of one pixel of an 8-bit, non-interlaced RGB or RGBA PNG."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks, header = 8, b"", b""
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind, body = png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            chunks += body
        pos += 12 + length
    width, _, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert (depth, interlace) == (8, 0), (depth, interlace)
    assert color in (2, 6), color
    channels = 4 if color == 6 else 3
    raw, stride = zlib.decompress(chunks), width * channels
    previous = bytearray(stride)
    for row in range(y + 1):
        kind, line = (
            raw[row * (stride + 1)],
            bytearray(raw[row * (stride + 1) + 1 : (row + 1) * (stride + 1)]),
        )
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b, c = previous[i], previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + a) & 255
            elif kind == 2:
                line[i] = (line[i] + b) & 255
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        previous = line
    return tuple(previous[x * channels : (x + 1) * channels])
