"""A webhook receiver on loopback for tests: verifies every request's signature twice (with
the standardwebhooks library, and with an HMAC computed here), answers as told (200, 500,
410, or hangs until released), and can be stopped and started again on the same port."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError


@dataclass(frozen=True)
class Received:
    """One request as the receiver saw it."""

    event_id: str
    event_type: str
    signature: str
    library_verified: bool
    hmac_verified: bool
    body: dict[str, Any]
    answered: int


class Receiver:
    """The receiving end of drip's outbound webhooks."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.key = base64.b64decode(secret.removeprefix("whsec_"))
        self.port = 0
        self.answer = 200
        self.hang = threading.Event()  # set: hold each request until `released` is set
        self.released = threading.Event()
        self.hanging = 0
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def start(self) -> Receiver:
        """Listen (on port 0 the first time, on the same port after a stop)."""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0)).decode()
                if receiver.hang.is_set():
                    with receiver._lock:
                        receiver.hanging += 1
                    receiver.released.wait(30)
                    with receiver._lock:
                        receiver.hanging -= 1
                receiver.record(body, dict(self.headers.items()), receiver.answer)
                self.send_response(receiver.answer)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        threading.Thread(target=server.serve_forever, name="receiver", daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop listening: connections are refused until `start`."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def record(self, body: str, headers: dict[str, str], answered: int) -> None:
        """Verify and keep one request."""
        lowered = {k.lower(): v for k, v in headers.items()}
        try:
            Webhook(self.secret).verify(body, lowered)
            library = True
        except WebhookVerificationError:
            library = False
        signed = f"{lowered['webhook-id']}.{lowered['webhook-timestamp']}.{body}".encode()
        digest = base64.b64encode(hmac.new(self.key, signed, hashlib.sha256).digest()).decode()
        payload = json.loads(body)
        with self._lock:
            self.received.append(
                Received(
                    event_id=lowered["webhook-id"],
                    event_type=payload["type"],
                    signature=lowered["webhook-signature"],
                    library_verified=library,
                    hmac_verified=hmac.compare_digest(lowered["webhook-signature"], f"v1,{digest}"),
                    body=payload,
                    answered=answered,
                )
            )

    def accepted(self) -> list[Received]:
        """The requests answered 2xx."""
        with self._lock:
            return [r for r in self.received if 200 <= r.answered < 300]
