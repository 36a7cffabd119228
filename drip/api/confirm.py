"""`GET /confirm/{sequence}/{token}` shows a button; `POST` confirms the signup.

Confirming takes a POST so that link scanners, which follow every link in an email,
cannot confirm on the subscriber's behalf. A token past `DRIP_CONFIRMATION_TTL`, or one
that no longer answers an open request (`drip.signup.confirm`), gets the "expired" page
(410); a tampered one, or one made for another sequence, the "not valid" page (400).
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
from drip.unsubscribe.tokens import ConfirmClaim, ExpiredToken

router = APIRouter()

EXPIRED: dict[int | str, dict[str, object]] = {
    410: {"description": "The request expired", "content": {"text/html": {}}}
}


def _claim(runtime: Runtime, sequence_id: str, token: str) -> ConfirmClaim | HTMLResponse:
    """The token's claim if it is ours, alive and made for `sequence_id`; else the page to show."""
    try:
        claim = runtime.signer.read_confirm(token, max_age=runtime.settings.confirmation_ttl)
    except ExpiredToken:
        return page("expired.html", status_code=410)
    except BadToken:
        return page("bad_link.html", status_code=400)
    if claim.sequence_id != sequence_id or sequence_id not in runtime.catalog:
        return page("bad_link.html", status_code=400)
    return claim


@router.get(
    "/confirm/{sequence_id}/{token}",
    response_class=HTMLResponse,
    responses={**BAD_LINK, **EXPIRED},
)
def confirm_page(
    sequence_id: str, token: str, runtime: Runtime = Depends(get_runtime)
) -> HTMLResponse:
    """The page with the button; it changes nothing."""
    claim = _claim(runtime, sequence_id, token)
    if isinstance(claim, HTMLResponse):
        return claim
    return page("confirm.html", sequence_name=runtime.catalog.get(sequence_id).definition.name)


@router.post(
    "/confirm/{sequence_id}/{token}",
    response_class=HTMLResponse,
    responses={**BAD_LINK, **EXPIRED},
)
def confirm(sequence_id: str, token: str, runtime: Runtime = Depends(get_runtime)) -> HTMLResponse:
    """Confirm the signup the token answers, then enqueue its first email."""
    claim = _claim(runtime, sequence_id, token)
    if isinstance(claim, HTMLResponse):
        return claim
    with transaction(runtime.sessions) as session:
        result = confirm_enrollment(
            session,
            public_id=claim.public_id,
            sequence=runtime.catalog.get(sequence_id).definition,
            issued_at=claim.issued_at,
            now=utcnow(),
            queue_lease=runtime.settings.queue_lease,
        )
    if not result.confirmed:
        return page("expired.html", status_code=410)
    for delivery_id in result.to_enqueue:
        enqueue_or_release(runtime, delivery_id)
    return page("confirmed.html")
