"""`GET /confirm/{sequence}/{token}` shows a button; `POST` confirms the signup.

Confirming takes a POST so that link scanners, which follow every link in an email,
cannot confirm on the subscriber's behalf.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import HTMLResponse

from drip.api.deps import get_runtime
from drip.api.enqueue import enqueue_or_release
from drip.api.pages import page
from drip.api.unsubscribe import BAD_LINK
from drip.db import transaction, utcnow
from drip.errors import BadToken
from drip.runtime import Runtime
from drip.signup.confirm import confirm_enrollment
from drip.unsubscribe.tokens import Purpose

router = APIRouter()


@router.get("/confirm/{sequence_id}/{token}", response_class=HTMLResponse, responses=BAD_LINK)
def confirm_page(
    sequence_id: str, token: str, runtime: Runtime = Depends(get_runtime)
) -> HTMLResponse:
    try:
        runtime.signer.read(token, Purpose.CONFIRM)
    except BadToken:
        return page("bad_link.html", status_code=400)
    if sequence_id not in runtime.catalog:
        return page("bad_link.html", status_code=400)
    return page("confirm.html", sequence_name=runtime.catalog.get(sequence_id).definition.name)


@router.post(
    "/confirm/{sequence_id}/{token}",
    response_class=HTMLResponse,
    responses={
        **BAD_LINK,
        410: {"description": "The request expired", "content": {"text/html": {}}},
    },
)
def confirm(sequence_id: str, token: str, runtime: Runtime = Depends(get_runtime)) -> HTMLResponse:
    try:
        public_id = runtime.signer.read(token, Purpose.CONFIRM)
    except BadToken:
        return page("bad_link.html", status_code=400)
    if sequence_id not in runtime.catalog:
        return page("bad_link.html", status_code=400)
    with transaction(runtime.sessions) as session:
        result = confirm_enrollment(
            session,
            public_id=public_id,
            sequence=runtime.catalog.get(sequence_id).definition,
            now=utcnow(),
            queue_lease=runtime.settings.queue_lease,
        )
    if not result.confirmed:
        return page("expired.html", status_code=410)
    for delivery_id in result.to_enqueue:
        enqueue_or_release(runtime, delivery_id)
    return page("confirmed.html")
