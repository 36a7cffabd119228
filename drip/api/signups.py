"""`POST /signups` (JSON or form fields) and the signup page at `GET /`.

The answer is the same 202 whether the address is new, known, enrolled or unsubscribed,
so the endpoint cannot be used to learn who is on the list. The per-IP limit is counted
before the body is read, on the address `drip.api.client_ip` finds (`DRIP_TRUSTED_PROXIES`);
the body is capped at `MAX_SIGNUP_BYTES` (413) and anything that does not parse gets 422.
A first name must read as a name (`drip.signup.request.check_name`): the first email puts
it in its subject, and the form is open to anyone.
"""

from __future__ import annotations

import asyncio
import json
import weakref
from functools import partial
from typing import Any

import structlog
from anyio import CapacityLimiter, to_thread
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.types import Message

from drip.api.client_ip import FORWARDED_FOR, client_address
from drip.api.deps import get_runtime
from drip.api.pages import page
from drip.contacts.identity import email_hash
from drip.db import transaction, utcnow
from drip.deliveries.enqueue import enqueue_after_commit
from drip.metrics import SIGNUPS, SIGNUPS_RATE_LIMITED
from drip.pools import process_pool
from drip.runtime import Runtime
from drip.send.actor import enqueue_due_now
from drip.signup.request import SignupRequest
from drip.signup.service import enroll_contact

log = structlog.get_logger(__name__)
router = APIRouter()

#: The signup form's hidden field: people leave it empty, form-filling bots do not.
HONEYPOT = "website"

#: The largest signup body read (a signup is a few short fields); 413 beyond.
MAX_SIGNUP_BYTES = 16 * 1024

#: The one answer every accepted signup gets.
ACCEPTED = {
    "status": "accepted",
    "detail": "If the address is valid, the first email is on its way.",
}

_SIGNUP_BODY = {
    "required": True,
    "content": {
        "application/json": {"schema": SignupRequest.model_json_schema()},
        "application/x-www-form-urlencoded": {"schema": SignupRequest.model_json_schema()},
    },
}


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def signup_page() -> HTMLResponse:
    """The signup form (it works without JavaScript)."""
    return page("signup.html")


@router.post(
    "/signups",
    status_code=202,
    openapi_extra={"requestBody": _SIGNUP_BODY},
    responses={
        202: {"description": "Accepted", "content": {"application/json": {}, "text/html": {}}},
        413: {"description": f"The body is over {MAX_SIGNUP_BYTES} bytes"},
        422: {"description": "A field is invalid, or the body does not parse"},
        429: {"description": "Too many signups"},
        503: {"description": "The database is unavailable"},
    },
)
async def create_signup(request: Request) -> Response:
    """Accept a signup: validate, upsert the contact, enroll it and plan step 1.

    The per-IP limit is counted before the body is read, so a flood costs one Redis call
    per request; the body is then read up to `MAX_SIGNUP_BYTES` (413 beyond).
    """
    runtime = get_runtime(request)  # called, not a dependency: FastAPI's solving costs more
    limiter = runtime.signup_limiter
    if limiter is not None:
        client_ip = client_address(
            request.client.host if request.client else "unknown",
            request.headers.getlist(FORWARDED_FOR),
            runtime.settings.trusted_proxy_networks,
        )
        # On the event loop: a thread hop each way would cost more than the Redis call.
        verdict = await limiter.check_ip_async(client_ip)
        if not verdict.allowed:
            SIGNUPS_RATE_LIMITED.inc()
            return _too_many(verdict.retry_after)
    body = await _read_capped(request, MAX_SIGNUP_BYTES)
    if body is None:
        return JSONResponse(
            {"detail": f"the body is over {MAX_SIGNUP_BYTES} bytes"}, status_code=413
        )
    is_form = not request.headers.get("content-type", "").startswith("application/json")
    fields = await _form_fields(request, body) if is_form else _json_fields(body)
    if isinstance(fields, JSONResponse):
        return fields
    wants_html = is_form and "text/html" in request.headers.get("accept", "")
    # Redis and the database are called synchronously: off the event loop, in a thread.
    return await to_thread.run_sync(
        _sign_up, runtime, fields, wants_html, limiter=_database_slots(runtime)
    )


_slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, CapacityLimiter] = (
    weakref.WeakKeyDictionary()
)


def _database_slots(runtime: Runtime) -> CapacityLimiter:
    """How many signups of this event loop run at once: as many as the process's pool keeps
    connections open. A burst beyond waits here for a kept connection, where it would
    otherwise take an overflow connection that the pool closes once returned: a new
    PostgreSQL backend per signup, which cost more than the signup itself under load
    (and set the tail latency)."""
    loop = asyncio.get_running_loop()
    slots = _slots.get(loop)
    if slots is None:
        slots = _slots[loop] = CapacityLimiter(process_pool(runtime.settings).size)
    return slots


def _sign_up(runtime: Runtime, fields: dict[str, Any], wants_html: bool) -> Response:
    if fields.get(HONEYPOT):
        SIGNUPS.inc()  # counted like any accepted signup: a scrape cannot tell the bot apart
        log.info("signup.honeypot")  # a bot filled the hidden field: answer as usual, do nothing
        return _accepted(wants_html)
    try:
        signup = SignupRequest.model_validate(fields)
    except ValidationError as exc:
        detail = [
            {
                "loc": ["body", *map(str, e["loc"])],
                "msg": e["msg"].removeprefix("Value error, "),
                "type": e["type"],
            }
            for e in exc.errors()
        ]
        return JSONResponse({"detail": detail}, status_code=422)
    limiter = runtime.signup_limiter
    if limiter is not None:
        verdict = limiter.check_address(email_hash(signup.email))
        if not verdict.allowed:
            SIGNUPS_RATE_LIMITED.inc()
            return _too_many(verdict.retry_after)
    with transaction(runtime.sessions) as session:
        result = enroll_contact(
            session,
            signup,
            catalog=runtime.catalog,
            default_sequence=runtime.settings.default_sequence,
            now=utcnow(),
            queue_lease=runtime.settings.queue_lease,
        )
    SIGNUPS.inc()
    if result.delivery_to_enqueue is not None:
        # Through the due-now buffer, to be sent in a batch; handed back if Redis refuses.
        enqueue_after_commit(
            partial(enqueue_due_now, runtime.broker), runtime.sessions, [result.delivery_to_enqueue]
        )
    return _accepted(wants_html)


def _accepted(wants_html: bool) -> Response:
    if wants_html:
        return page("thanks.html", status_code=202)
    return JSONResponse(ACCEPTED, status_code=202)


def _too_many(retry_after: int) -> JSONResponse:
    return JSONResponse(
        {"detail": f"too many signups; try again in {retry_after} seconds"},
        status_code=429,
        headers={"Retry-After": str(retry_after)},
    )


def _unparsable(message: str, kind: str) -> JSONResponse:
    return JSONResponse(
        {"detail": [{"loc": ["body"], "msg": message, "type": kind}]}, status_code=422
    )


async def _read_capped(request: Request, limit: int) -> bytes | None:
    """The body, or None as soon as it (declared or received) is over `limit` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


def _json_fields(body: bytes) -> dict[str, Any] | JSONResponse:
    try:
        fields = json.loads(body or b"null")
    except (ValueError, RecursionError):  # RecursionError: a body of nothing but "[[[[..."
        return _unparsable("the body is not valid JSON", "json_invalid")
    if not isinstance(fields, dict):
        return _unparsable("the body must be a JSON object", "object_type")
    return fields


async def _form_fields(request: Request, body: bytes) -> dict[str, Any] | JSONResponse:
    """The string fields of a urlencoded or multipart form already read as `body`."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if replayed:
            return {"type": "http.disconnect"}
        replayed = True
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay).form()
    except HTTPException:  # starlette's answer to a multipart body that does not parse
        return _unparsable("the body is not a valid form", "form_invalid")
    try:
        return {k: v for k, v in form.items() if isinstance(v, str)}
    finally:
        await form.close()
