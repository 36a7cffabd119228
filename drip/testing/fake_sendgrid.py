"""A fake SendGrid Mail Send API on loopback, for tests, benchmarks, fault injection and demos.

Every request body is validated against SendGrid's published JSON schema for
`POST /v3/mail/send`; a body that does not conform gets the 400 SendGrid would send and
is recorded as a schema violation, so a test fails if drip ever sends one. Answers can
be scripted (`script([429, 202])`), or drawn at random from `Faults`: rate limits,
5xx, connection resets, answers slower than the client waits, and messages accepted
whose answer is then lost. With a webhook URL and signer it posts a signed `processed`
event for every message it accepted, as SendGrid does.
"""

from __future__ import annotations

import json
import queue
import random
import socket
import struct
import sys
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from drip.testing.signing import WebhookSigner


@dataclass(frozen=True)
class Scripted:
    """One scripted answer: a status, optional headers and a body."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] | None = None


@dataclass
class Faults:
    """Probabilities of each fault per request (the rest are accepted)."""

    rate_limit: float = 0.0
    rate_limit_reset: float = 1.0
    error_500: float = 0.0
    error_503: float = 0.0
    reset: float = 0.0
    slow: float = 0.0
    slow_seconds: float = 2.0
    accept_then_drop: float = 0.0
    seed: int = 1
    #: Faults for the first requests, in order, before any is drawn: a run that must meet
    #: a fault meets it however few requests it makes.
    first: tuple[str, ...] = ()
    _given: int = field(default=0, init=False, repr=False, compare=False)

    def draw(self, rng: random.Random) -> str:
        """The fault for the next request (or "accept"): the next of `first`, then drawn
        with `rng`."""
        if self._given < len(self.first):
            self._given += 1
            return self.first[self._given - 1]
        roll = rng.random()
        for name in ("rate_limit", "error_500", "error_503", "reset", "slow", "accept_then_drop"):
            chance: float = getattr(self, name)
            if roll < chance:
                return name
            roll -= chance
        return "accept"


@dataclass
class Accepted:
    """One recipient of a request the fake accepted, with its payload and arrival time."""

    message_id: str
    payload: dict[str, Any]
    at: float

    @property
    def delivery_id(self) -> str | None:
        """The drip delivery id this recipient's custom args name."""
        value = self.payload.get("custom_args", {}).get("delivery_id")
        return str(value) if value is not None else None


def load_validator(schema_path: Path) -> Any:
    """A Draft 2020-12 validator for the Mail Send body, checking `format: email` too."""
    from jsonschema import Draft202012Validator, FormatChecker

    schema = json.loads(schema_path.read_text())
    return Draft202012Validator(schema, format_checker=FormatChecker())


class FakeSendGrid:
    """Start with `start()`; read `accepted`, `requests` and `violations`; stop with `stop()`."""

    def __init__(
        self,
        schema_path: Path,
        *,
        api_key: str = "SG.test-key",
        faults: Faults | None = None,
        webhook_url: str | None = None,
        signer: WebhookSigner | None = None,
    ) -> None:
        self.validator = load_validator(schema_path)
        self.api_key = api_key
        self.faults = faults or Faults()
        self.accepted: list[Accepted] = []
        self.requests: list[dict[str, Any]] = []
        self.violations: list[str] = []
        #: What happened to every recipient of every request: (delivery_id, outcome), in
        #: arrival order (a request for several recipients adds one entry for each).
        self.log: list[tuple[str | None, str]] = []
        #: When each entry of `log` arrived (monotonic seconds).
        self.arrivals: list[float] = []
        self._script: deque[Scripted] = deque()
        self._lock = threading.Lock()
        self._rng = random.Random(self.faults.seed)
        self._events: queue.Queue[dict[str, Any]] = queue.Queue()
        self._webhook = (webhook_url, signer) if webhook_url and signer else None
        self._poster = threading.Thread(target=self._post_events, daemon=True)
        self._stopping = threading.Event()
        self._server = _QuietServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """The base URL to give drip as `DRIP_SENDGRID_HOST`."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeSendGrid:
        """Start serving on loopback (and posting events, when a webhook is set)."""
        self._thread.start()
        if self._webhook:
            self._poster.start()
        return self

    def stop(self) -> None:
        """Stop serving and posting events."""
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()

    def _post_events(self) -> None:
        """Post signed `processed` events in small batches, as SendGrid's webhook does."""
        assert self._webhook is not None
        url, signer = self._webhook
        with httpx.Client(timeout=5) as client:
            while not self._stopping.is_set():
                batch = []
                try:
                    batch.append(self._events.get(timeout=0.2))
                    while len(batch) < 100:
                        batch.append(self._events.get_nowait())
                except queue.Empty:
                    pass
                if not batch:
                    continue
                body = json.dumps(batch).encode()
                for _ in range(50):  # SendGrid retries a failed post; so do we, briefly
                    try:
                        if (
                            client.post(url, content=body, headers=signer.headers(body)).status_code
                            == 200
                        ):
                            break
                    except httpx.HTTPError:
                        pass
                    time.sleep(0.2)

    def script(self, answers: list[int | Scripted]) -> None:
        """Answer the next requests with these, in order, then accept as usual."""
        with self._lock:
            self._script.extend(a if isinstance(a, Scripted) else Scripted(a) for a in answers)

    def accepted_for(self, delivery_id: int | str) -> list[Accepted]:
        """Every acceptance of the email for `delivery_id`."""
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
            recipients = recipient_views(payload)
            now = time.monotonic()
            scripted = self._script.popleft() if self._script else None
            if scripted is not None and scripted.status != 202:
                for view in recipients:
                    self.log.append((_delivery_id(view), f"scripted {scripted.status}"))
                    self.arrivals.append(now)
                body = json.dumps(scripted.body).encode() if scripted.body else _errors("scripted")
                return scripted.status, scripted.headers, body
            fault = "accept" if scripted is not None else self.faults.draw(self._rng)
            for view in recipients:
                self.log.append((_delivery_id(view), fault))
                self.arrivals.append(now)
            if fault == "rate_limit":
                reset = str(round(time.time() + self.faults.rate_limit_reset, 3))
                return 429, {"X-RateLimit-Reset": reset}, _errors("too many requests")
            if fault in ("error_500", "error_503"):
                return int(fault[-3:]), {}, _errors("internal error")
            if fault in ("reset", "slow"):
                return -1 if fault == "reset" else -2, {}, b""
            message_id = uuid.uuid4().hex[:22]
            for n, view in enumerate(recipients):
                self.accepted.append(Accepted(message_id, view, now))
                delivery_id = _delivery_id(view)
                if self._webhook and delivery_id is not None:
                    self._events.put(
                        {
                            "event": "processed",
                            "sg_event_id": f"processed-{message_id}-{n}",
                            "sg_message_id": f"{message_id}.recipient{n}",
                            "delivery_id": delivery_id,
                            "timestamp": int(time.time()),
                            "email": _first_to(view),
                        }
                    )
            if fault == "accept_then_drop":
                return -1, {}, b""
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
                if status == -2:  # slower than the client waits, then not accepted
                    time.sleep(fake.faults.slow_seconds)
                    status, body = 503, _errors("slow")
                if status == -1:  # drop the connection with a reset, no answer
                    self.close_connection = True
                    self.connection.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                    )
                    self.connection.close()
                    return
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


class _QuietServer(ThreadingHTTPServer):
    """A client that gave up (a timeout we provoked) is expected; its broken pipe is not news."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


def recipient_views(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """What each recipient of a request gets, as a request of its own: its personalization's
    subject, headers and custom_args over the request's, and its substitutions made in the
    content (as SendGrid does). A request with one plain personalization is its own view."""
    people = payload["personalizations"]
    if len(people) == 1 and not people[0].get("substitutions"):
        return [payload]
    views = []
    for person in people:
        content = []
        for part in payload["content"]:
            value = part["value"]
            for token, replacement in (person.get("substitutions") or {}).items():
                value = value.replace(token, replacement)
            content.append({**part, "value": value})
        views.append(
            {
                **payload,
                "personalizations": [{"to": person["to"]}],
                "subject": person.get("subject", payload["subject"]),
                "headers": {**payload.get("headers", {}), **person.get("headers", {})},
                "custom_args": {**payload.get("custom_args", {}), **person.get("custom_args", {})},
                "content": content,
            }
        )
    return views


def _delivery_id(view: dict[str, Any]) -> str | None:
    value = view.get("custom_args", {}).get("delivery_id")
    return str(value) if value is not None else None


def _first_to(payload: dict[str, Any]) -> str:
    try:
        return str(payload["personalizations"][0]["to"][0]["email"])
    except (KeyError, IndexError, TypeError):
        return ""


def _errors(message: str) -> bytes:
    return json.dumps({"errors": [{"message": message, "field": None, "help": None}]}).encode()
