"""`POST /v1/events`: another app reports what a contact did (scope `events:write`).

Answers 202 after the event is committed, and the same 202 to a repeat of its `id`, which
stores nothing (`drip.events.contact_store`). The event is then applied by the
`drip.apply_contact_events` actor; if Redis is down, by the scheduler's recovery.
"""

from __future__ import annotations

import structlog
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from drip.api.deps import get_runtime
from drip.api.v1.auth import require
from drip.api.v1.reading import parse_body, read_body
from drip.api.v1.responses import WITH_BODY, body_schema
from drip.api.v1.schemas import EventAccepted, EventBody
from drip.db import transaction, utcnow
from drip.events.contact_actor import enqueue_contact_events
from drip.events.contact_store import store_contact_event
from drip.keys.scopes import Scope
from drip.runtime import Runtime

log = structlog.get_logger(__name__)
router = APIRouter(tags=["v1"])


@router.post(
    "/v1/events",
    status_code=202,
    response_model=EventAccepted,
    responses=WITH_BODY,
    openapi_extra=body_schema(EventBody),
    dependencies=[Depends(require(Scope.EVENTS_WRITE))],
)
async def post_event(request: Request, runtime: Runtime = Depends(get_runtime)) -> Response:
    """Store an event once by its `id`, then apply it to the contact's sequences."""
    body = await read_body(request)
    if isinstance(body, Response):
        return body
    return await run_in_threadpool(_store, runtime, body)


def _store(runtime: Runtime, body: bytes) -> Response:
    now = utcnow()
    event = parse_body(body, EventBody, context={"now": now})
    if isinstance(event, Response):
        return event
    with transaction(runtime.sessions) as session:
        new_id = store_contact_event(
            session,
            client_id=event.id,
            email=event.email,
            name=event.name,
            properties=event.properties,
            occurred_at=event.occurred_at or now,
            now=now,
        )
    if new_id is not None:
        try:
            enqueue_contact_events(runtime.broker, [new_id])
        except Exception as exc:  # the scheduler's recovery applies it
            log.warning("contact_events.enqueue_failed", event_id=new_id, error=str(exc))
    log.info("contact_events.received", event_name=event.name, new=new_id is not None)
    return JSONResponse(EventAccepted(id=event.id).model_dump(), status_code=202)
