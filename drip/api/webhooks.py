"""`POST /webhooks/sendgrid`: the Signed Event Webhook.

The signature is checked on the raw body first (403 when missing or wrong, when its
timestamp is more than a few minutes from now, or when no key is configured); a body over
`DRIP_WEBHOOK_MAX_BYTES` gets 413 unread. Everything after reading the body runs in a
worker thread, never on the event loop. Events are stored once each and applied by a
Dramatiq actor, so the answer is fast; if Redis is down they wait in the database and the
scheduler applies them.
"""

from __future__ import annotations

import json

import structlog
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from drip.api.deps import get_runtime
from drip.db import transaction, utcnow
from drip.events.actor import enqueue_events
from drip.events.store import store_events
from drip.events.verify import SIGNATURE_HEADER, TIMESTAMP_HEADER
from drip.metrics import WEBHOOK_EVENTS
from drip.runtime import Runtime

log = structlog.get_logger(__name__)
router = APIRouter()


def _refuse(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


@router.post(
    "/webhooks/sendgrid",
    responses={
        200: {"description": "Stored"},
        400: {"description": "Bad body"},
        403: {"description": "Bad signature"},
        413: {"description": "Too large"},
    },
)
async def sendgrid_events(
    request: Request, runtime: Runtime = Depends(get_runtime)
) -> JSONResponse:
    """Verify, store once by `sg_event_id`, and hand the new events to the events actor."""
    limit = runtime.settings.webhook_max_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return _refuse(413, f"the body is over {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return _refuse(413, f"the body is over {limit} bytes")
    # Checking the signature, parsing up to 5 MB and the transaction all block: in a thread.
    return await run_in_threadpool(
        _receive,
        runtime,
        bytes(body),
        request.headers.get(SIGNATURE_HEADER),
        request.headers.get(TIMESTAMP_HEADER),
    )


def _receive(
    runtime: Runtime, body: bytes, signature: str | None, timestamp: str | None
) -> JSONResponse:
    verifier = runtime.webhook_verifier
    if verifier is None:
        return _refuse(403, "the webhook is refused: DRIP_SENDGRID_WEBHOOK_PUBLIC_KEY is not set")
    if not verifier.is_fresh(timestamp):
        return _refuse(
            403, f"the timestamp is missing or more than {verifier.tolerance:.0f} s from now"
        )
    if not verifier.verify(body, signature, timestamp):
        return _refuse(403, "the signature is missing or does not match")
    try:
        events = json.loads(body)
    except (ValueError, RecursionError):
        return _refuse(400, "the body is not JSON")
    if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
        return _refuse(400, "the body must be a JSON array of event objects")
    with transaction(runtime.sessions) as session:
        stored = store_events(session, events, now=utcnow())
    if stored:
        try:
            enqueue_events(runtime.broker, stored)
        except Exception as exc:  # the scheduler applies them later
            log.warning("webhook.enqueue_failed", events=len(stored), error=str(exc))
    for event in events:
        WEBHOOK_EVENTS.labels(str(event.get("event") or "unknown")[:32]).inc()
    log.info("webhook.received", received=len(events), stored=len(stored))
    return JSONResponse({"received": len(events), "stored": len(stored)})
