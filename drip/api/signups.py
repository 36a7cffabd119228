"""`POST /signups` (JSON or form fields) and the signup page at `GET /`.

The answer is the same 202 whether the address is new, known, enrolled or unsubscribed,
so the endpoint cannot be used to learn who is on the list.
"""

from __future__ import annotations

import json
from typing import Any

import structlog
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from drip.api.deps import get_runtime
from drip.api.enqueue import enqueue_or_release
from drip.api.pages import page
from drip.db import transaction, utcnow
from drip.metrics import SIGNUPS
from drip.runtime import Runtime
from drip.contacts.identity import email_hash
from drip.signup.request import SignupRequest
from drip.signup.service import enroll_contact

log = structlog.get_logger(__name__)
router = APIRouter()

#: The signup form's hidden field: people leave it empty, form-filling bots do not.
HONEYPOT = "website"

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
    return page("signup.html")


@router.post(
    "/signups",
    status_code=202,
    openapi_extra={"requestBody": _SIGNUP_BODY},
    responses={
        202: {"description": "Accepted", "content": {"application/json": {}, "text/html": {}}},
        422: {"description": "A field is invalid"},
        429: {"description": "Too many signups"},
        503: {"description": "The database is unavailable"},
    },
)
async def create_signup(request: Request, runtime: Runtime = Depends(get_runtime)) -> Response:
    """Accept a signup: validate, upsert the contact, enroll it and plan step 1."""
    is_form = not request.headers.get("content-type", "").startswith("application/json")
    fields = await _read_fields(request, is_form)
    if isinstance(fields, JSONResponse):
        return fields
    wants_html = is_form and "text/html" in request.headers.get("accept", "")
    client_ip = request.client.host if request.client else "unknown"
    # Redis and the database are called synchronously: off the event loop, in a worker thread.
    return await run_in_threadpool(_sign_up, runtime, fields, client_ip, wants_html)


def _sign_up(
    runtime: Runtime, fields: dict[str, Any], client_ip: str, wants_html: bool
) -> Response:
    limiter = runtime.signup_limiter
    if limiter is not None:
        verdict = limiter.check_ip(client_ip)
        if not verdict.allowed:
            SIGNUPS.labels("-", "rate_limited").inc()
            return _too_many(verdict.retry_after)
    if fields.get(HONEYPOT):
        SIGNUPS.labels("-", "honeypot").inc()
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
    if limiter is not None:
        verdict = limiter.check_address(email_hash(signup.email))
        if not verdict.allowed:
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
    outcome = (
        "enrolled"
        if result.enrolled
        else "confirmation"
        if result.confirmation_sent
        else "unchanged"
    )
    SIGNUPS.labels(signup.sequence or runtime.settings.default_sequence, outcome).inc()
    if result.delivery_to_enqueue is not None:
        enqueue_or_release(runtime, result.delivery_to_enqueue)
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


async def _read_fields(request: Request, is_form: bool) -> dict[str, Any] | JSONResponse:
    if not is_form:
        try:
            body = json.loads(await request.body() or b"null")
        except (json.JSONDecodeError, UnicodeDecodeError):
            return JSONResponse(
                {
                    "detail": [
                        {
                            "loc": ["body"],
                            "msg": "the body is not valid JSON",
                            "type": "json_invalid",
                        }
                    ]
                },
                status_code=422,
            )
        if not isinstance(body, dict):
            return JSONResponse(
                {
                    "detail": [
                        {
                            "loc": ["body"],
                            "msg": "the body must be a JSON object",
                            "type": "object_type",
                        }
                    ]
                },
                status_code=422,
            )
        return body
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}
