"""`GET /unsubscribe/{token}` shows a confirm button; `POST` is RFC 8058 one-click.

The POST answers 200 with a page (never a redirect, never a cookie) and is idempotent.
A tampered or unknown token gets the same 400 page, which says nothing about anyone.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import HTMLResponse

from drip.api.deps import get_runtime
from drip.api.pages import page
from drip.db import transaction, utcnow
from drip.errors import BadToken
from drip.runtime import Runtime
from drip.unsubscribe.service import unsubscribe_contact

router = APIRouter()


@router.get("/unsubscribe/{token}", response_class=HTMLResponse)
def confirm_page(token: str, runtime: Runtime = Depends(get_runtime)) -> HTMLResponse:
    """The page with the confirm button."""
    try:
        runtime.signer.read(token)
    except BadToken:
        return page("bad_link.html", status_code=400)
    return page("unsubscribe.html")


@router.post("/unsubscribe/{token}", response_class=HTMLResponse)
def unsubscribe(token: str, runtime: Runtime = Depends(get_runtime)) -> HTMLResponse:
    """One-click unsubscribe: every scheduled email is cancelled before this answers."""
    try:
        public_id = runtime.signer.read(token)
    except BadToken:
        return page("bad_link.html", status_code=400)
    with transaction(runtime.sessions) as session:
        found = unsubscribe_contact(session, public_id, reason="unsubscribe link", now=utcnow())
    if not found:
        return page("bad_link.html", status_code=400)
    return page("unsubscribed.html")
