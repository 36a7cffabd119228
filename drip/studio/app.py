"""The studio's web app: one page, its JSON, its event stream and the test send.

Served on 127.0.0.1 only, yet a web page in the marketer's browser could still reach it,
so: the Host header must name this machine (a rebound DNS name is refused), the page
cannot be framed, and the one request that does something (the test send) is a POST that
carries the run's token in the `X-Studio-Token` header, which a cross-site form cannot
set and a cross-site script cannot send without a CORS answer the studio never gives.
Nothing here writes to the database: the impact is read with `plan_changes`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import anyio.to_thread
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from drip.errors import DripError, SendError
from drip.schedule.simulation import simulate
from drip.send.transports.base import Transport
from drip.sequences.definition import check_timezone
from drip.sequences.samples import Sample, find_sample
from drip.sequences.specimen import subject_for
from drip.sequences.trial import RecipientRefused, allowed_recipient, compose_test_message
from drip.studio.email import show_email
from drip.studio.impact import read_impact
from drip.studio.watcher import Changes, watch
from drip.studio.workspace import Snapshot, Workspace, excerpt
from drip.unsubscribe.links import Links
from drip.unsubscribe.tokens import TokenSigner

HERE = Path(__file__).parent

#: The header a POST must carry, with the run's token.
TOKEN_HEADER = "X-Studio-Token"  # noqa: S105 - a header name, not a secret

#: Seconds between keep-alive comments on an idle event stream.
HEARTBEAT = 15.0

#: The only host names the studio answers to.
LOCAL_HOSTS = ["127.0.0.1", "localhost"]

#: What the page may load: its own script and style; emails' images from anywhere.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src * data:; font-src * data:; frame-src 'self' about:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


@dataclass
class StudioConfig:
    """What the studio needs of the settings, read at the edge (`drip.studio.server`)."""

    folder: Path
    postal_address: str
    base_url: str
    #: Addresses the test-send button may send to (DRIP_TEST_RECIPIENTS).
    test_recipients: tuple[str, ...] = ()
    #: The signing key of test sends' links (previews sign with a throwaway key).
    secret_key: str = ""
    #: The configured transport, made on demand for a test send.
    transport: Callable[[], Transport] | None = None
    #: The database `plan` reads, or None when none is configured.
    database_url: str | None = None
    #: The daily cap (DRIP_MAX_EMAILS_PER_DAY) the impact panel applies, as `plan` does.
    daily_cap: int = 0
    token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    watch: bool = True


def create_studio_app(config: StudioConfig) -> Starlette:
    """The studio for `config.folder`, watching it for changes while it runs."""
    workspace = Workspace(config.folder, postal_address=config.postal_address)
    changes = Changes(workspace.snapshot.generation)
    preview_links = Links(signer=TokenSigner("studio-preview"), base_url=config.base_url)
    pages = Environment(
        loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"])
    )
    stopping = asyncio.Event()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(watch(workspace, changes, stopping)) if config.watch else None
        try:
            yield
        finally:
            stopping.set()
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(task, 5)

    async def page(request: Request) -> Response:
        html = pages.get_template("studio.html").render(
            token=config.token,
            folder=str(config.folder),
            recipients=config.test_recipients,
        )
        return HTMLResponse(html, headers=_headers())

    async def state(request: Request) -> Response:
        snapshot = workspace.snapshot
        return _json(_state(snapshot))

    async def email(request: Request) -> Response:
        snapshot = workspace.snapshot
        query = request.query_params
        try:
            sample = find_sample(snapshot.samples, query.get("sample") or None)
        except KeyError as exc:
            return _json({"missing": str(exc.args[0])}, 404)

        def render() -> dict[str, Any]:
            try:
                return show_email(
                    snapshot,
                    query.get("sequence", ""),
                    query.get("step", ""),
                    sample,
                    links=preview_links,
                )
            except Exception as exc:  # whatever a file does, the page shows it and lives on
                message = f"{type(exc).__name__}: {exc}"
                return {"error": {"message": message, "file": None, "line": None, "excerpt": []}}

        shown = await anyio.to_thread.run_sync(render)
        shown["generation"] = snapshot.generation
        return _json(shown, 404 if "missing" in shown else 200)

    async def timeline(request: Request) -> Response:
        snapshot = workspace.snapshot
        query = request.query_params
        sequence = snapshot.sequence(query.get("sequence", ""))
        if sequence is None:
            return _json({"missing": "no such sequence now"}, 404)
        try:
            zone = ZoneInfo(check_timezone(query.get("timezone") or sequence.timezone))
            start = datetime.fromisoformat(query["signup_at"]) if query.get("signup_at") else None
        except (ValueError, KeyError) as exc:
            return _json({"error": str(exc)}, 400)
        start = (start or datetime.now(zone)).replace(second=0, microsecond=0)
        start = start if start.tzinfo else start.replace(tzinfo=zone)
        try:
            sample = find_sample(snapshot.samples, query.get("sample") or None)
        except KeyError as exc:
            return _json({"missing": str(exc.args[0])}, 404)
        sends = simulate(
            sequence,
            signup_at=start,
            zone=zone,
            subject=subject_for(snapshot.renderer, sequence, sample.contact),
        )
        return _json(
            {
                "timezone": str(zone),
                "signup_at": start.isoformat(),
                "sends": [s.as_dict() for s in sends],
            }
        )

    async def impact(request: Request) -> Response:
        snapshot = workspace.snapshot
        answer = await anyio.to_thread.run_sync(
            lambda: read_impact(snapshot.catalog, config.database_url, daily_cap=config.daily_cap)
        )
        return _json(answer)

    async def test_send(request: Request) -> Response:
        refused = _refuse_cross_site(request, config.token)
        if refused is not None:
            return refused
        try:
            body = json.loads(await request.body())
            to = str(body["to"])
            sequence_id, step_id = str(body["sequence"]), str(body["step"])
            label = body.get("sample")
        except (ValueError, KeyError, TypeError):
            return _json({"error": "send JSON with to, sequence, step and sample"}, 400)
        try:
            address = allowed_recipient(to, config.test_recipients)
        except RecipientRefused as exc:
            return _json({"error": str(exc)}, 403)
        snapshot = workspace.snapshot
        sequence = snapshot.sequence(sequence_id)
        step = sequence.step(step_id) if sequence is not None else None
        if sequence is None or step is None:
            return _json({"error": f"no step {step_id!r} in sequence {sequence_id!r}"}, 404)
        if config.transport is None:
            return _json({"error": "no transport is configured for test sends"}, 503)
        try:
            sample = find_sample(snapshot.samples, label)
        except KeyError as exc:
            return _json({"error": str(exc.args[0])}, 404)
        links = Links(signer=TokenSigner(config.secret_key), base_url=config.base_url)
        make_transport = config.transport

        def send() -> str:
            message = compose_test_message(
                snapshot.renderer, sequence, step, sample.contact, links=links, to=address
            )
            transport = make_transport()
            try:
                return transport.send(message)
            finally:
                transport.close()

        try:
            message_id = await anyio.to_thread.run_sync(send)
        except (DripError, SendError, ValueError) as exc:
            return _json({"error": f"not sent: {exc}"}, 502)
        return _json({"sent": f"sent {step_id} to {address}", "message_id": message_id})

    async def events(request: Request) -> Response:
        async def stream() -> AsyncIterator[str]:
            seen = 0
            while not stopping.is_set():
                generation = await changes.wait_past(seen, timeout=HEARTBEAT)
                if await request.is_disconnected():
                    return
                if generation > seen:
                    seen = generation
                    yield f"event: change\ndata: {generation}\n\n"
                else:
                    yield ": still here\n\n"

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    return Starlette(
        routes=[
            Route("/", page),
            Route("/api/state", state),
            Route("/api/email", email),
            Route("/api/timeline", timeline),
            Route("/api/impact", impact),
            Route("/api/test-send", test_send, methods=["POST"]),
            Route("/events", events),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ],
        middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=LOCAL_HOSTS)],
        lifespan=lifespan,
    )


def _refuse_cross_site(request: Request, token: str) -> Response | None:
    """A 403 unless the request carries the run's token (and, when it says, comes from here)."""
    given = request.headers.get(TOKEN_HEADER, "")
    if not hmac.compare_digest(given.encode(), token.encode()):
        return _json({"error": f"refused: the {TOKEN_HEADER} header is missing or wrong"}, 403)
    origin = request.headers.get("origin")
    if origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}":
        return _json({"error": f"refused: a request from {origin}"}, 403)
    return None


def _state(snapshot: Snapshot) -> dict[str, Any]:
    problems = [
        {
            "file": p.file,
            "line": p.line,
            "field": p.field,
            "message": p.message,
            "excerpt": [vars(x) for x in excerpt(p.file, p.line)],
        }
        for p in snapshot.problems
    ]
    sequences = []
    for entry in snapshot.entries:
        seq = entry.sequence
        sequences.append(
            {
                "file": str(entry.path),
                "id": seq.id if seq else None,
                "name": seq.name if seq else entry.path.name,
                "timezone": seq.timezone if seq else None,
                "steps": [
                    {"id": s.id, "subject": s.subject, "number": n}
                    for n, s in enumerate(seq.steps if seq else (), 1)
                ],
            }
        )
    return {
        "generation": snapshot.generation,
        "folder": str(snapshot.folder),
        "sequences": sequences,
        "samples": [_sample(s) for s in snapshot.samples],
        "problems": problems,
    }


def _sample(sample: Sample) -> dict[str, Any]:
    contact = sample.contact
    return {
        "label": sample.label,
        "email": contact.email,
        "first_name": contact.first_name,
        "timezone": contact.timezone,
    }


def _headers() -> dict[str, str]:
    return {
        "Content-Security-Policy": CSP,
        "X-Frame-Options": "DENY",
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
    }


def _json(data: dict[str, Any], status: int = 200) -> Response:
    return JSONResponse(data, status_code=status, headers={"Cache-Control": "no-store"})
