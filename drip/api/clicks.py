"""`GET|HEAD /l/{token}`: a tracked link of an email (`drip.render.tracking`).

The token is signed and says which delivery, which link of it and where it leads, so the
answer is a 302 to that URL and to nothing else: a tampered or unknown token gets a 404
page, never a redirect. The redirect is not cached (`Cache-Control: no-store`: each
follow reaches us) and sends no `Referer` (`Referrer-Policy: no-referrer`: the token stays
here). The click is recorded by `drip.clicks.recording` under the rule of
`drip.clicks.rule`; when the database cannot record it, the reader is still sent on.
"""

from __future__ import annotations

import structlog
from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.exc import SQLAlchemyError

from drip.api.deps import get_runtime
from drip.api.pages import page
from drip.clicks.recording import record_click
from drip.db import transaction, utcnow
from drip.errors import BadToken
from drip.runtime import Runtime

log = structlog.get_logger(__name__)

router = APIRouter()

#: Headers of every redirect of a tracked link.
REDIRECT_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


@router.api_route(
    "/l/{token}",
    methods=["GET", "HEAD"],
    response_model=None,
    responses={
        302: {"description": "To the link's URL"},
        404: {"description": "The link is not valid", "content": {"text/html": {}}},
    },
)
def follow_link(token: str, request: Request, runtime: Runtime = Depends(get_runtime)) -> Response:
    """Record the click and redirect to the URL the email carried at this link."""
    try:
        claim = runtime.signer.read_click(token)
    except BadToken:
        return page("link_not_found.html", status_code=404)
    try:
        with transaction(runtime.sessions) as session:
            record_click(
                session,
                delivery_id=claim.delivery_id,
                link_index=claim.link_index,
                url=claim.url,
                method=request.method,
                user_agent=request.headers.get("user-agent"),
                now=utcnow(),
            )
    except SQLAlchemyError as exc:
        log.warning(
            "clicks.not_recorded", delivery_id=claim.delivery_id, error=str(exc).splitlines()[0]
        )
    return RedirectResponse(claim.url, status_code=302, headers=REDIRECT_HEADERS)
