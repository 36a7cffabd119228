"""A fake SendGrid Mail Send API on loopback, for tests, benchmarks and local demos.

Every request body is validated against SendGrid's published JSON schema for
`POST /v3/mail/send`; a body that does not conform gets the 400 SendGrid would send and
is recorded as a schema violation, so a test fails if drip ever sends one. Answers can
be scripted (`script([429, 202])`) to play rate limits, outages and refusals.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Scripted:
    """One scripted answer: a status, optional headers and a body."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] | None = None


@dataclass
class Accepted:
    message_id: str
    payload: dict[str, Any]
    at: float

    @property
    def delivery_id(self) -> str | None:
        value = self.payload.get("custom_args", {}).get("delivery_id")
        return str(value) if value is not None else None


def load_validator(schema_path: Path) -> Any:
    """A Draft 2020-12 validator for the Mail Send body, checking `format: email` too."""
    from jsonschema import Draft202012Validator, FormatChecker

    schema = json.loads(schema_path.read_text())
    return Draft202012Validator(schema, format_checker=FormatChecker())


class FakeSendGrid:
    """Start with `start()`; read `accepted`, `requests` and `violations`; stop with `stop()`."""

    def __init__(self, schema_path: Path, *, api_key: str = "SG.test-key") -> None:
        self.validator = load_validator(schema_path)
        self.api_key = api_key
        self.accepted: list[Accepted] = []
        self.requests: list[dict[str, Any]] = []
        self.violations: list[str] = []
        self._script: deque[Scripted] = deque()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeSendGrid:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def script(self, answers: list[int | Scripted]) -> None:
        """Answer the next requests with these, in order, then accept as usual."""
        with self._lock:
            self._script.extend(a if isinstance(a, Scripted) else Scripted(a) for a in answers)

    def accepted_for(self, delivery_id: int | str) -> list[Accepted]:
        with self._lock:
            return [a for a in self.accepted if a.delivery_id == str(delivery_id)]

    def _answer(self, headers: dict[str, str], raw: bytes) -> tuple[int, dict[str, str], bytes]:
        if headers.get("authorization") != f"Bearer {self.api_key}":
            return (
                401,
                {},
                _errors("The provided authorization grant is invalid, expired, or revoked"),
            )
        try:
            payload = json.loads(raw)
        except json.JSONDecodeError:
            return 400, {}, _errors("Invalid JSON")
        problems = sorted(self.validator.iter_errors(payload), key=lambda e: list(e.path))
        with self._lock:
            self.requests.append(payload)
            if problems:
                text = "; ".join(
                    f"{'/'.join(map(str, e.path)) or 'body'}: {e.message}" for e in problems
                )
                self.violations.append(text)
                return 400, {}, _errors(text)
            scripted = self._script.popleft() if self._script else None
            if scripted is not None and scripted.status != 202:
                body = json.dumps(scripted.body).encode() if scripted.body else _errors("scripted")
                return scripted.status, scripted.headers, body
            message_id = uuid.uuid4().hex[:22]
            self.accepted.append(Accepted(message_id, payload, time.monotonic()))
            return 202, {"X-Message-Id": message_id}, b""

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if self.path != "/v3/mail/send":
                    status, headers, body = 404, dict[str, str](), _errors("not found")
                else:
                    lowered = {k.lower(): v for k, v in self.headers.items()}
                    status, headers, body = fake._answer(lowered, raw)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                if body:
                    self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


def _errors(message: str) -> bytes:
    return json.dumps({"errors": [{"message": message, "field": None, "help": None}]}).encode()
