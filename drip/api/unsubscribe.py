"""`GET /unsubscribe/{token}` shows the choices; `POST` unsubscribes (RFC 8058 one-click).

The POST answers 200 with a page (never a redirect, never a cookie) and is idempotent.
The one-click body `List-Unsubscribe=One-Click` (and any POST without a choice) stops
everything; the page's form may instead leave one sequence. A tampered or unknown token
gets the same 400 page, which says nothing about anyone.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from drip.api.deps import get_runtime
from drip.api.pages import page
from drip.audit import record_audit
from drip.db import transaction, utcnow
from drip.errors import BadToken
from drip.runtime import Runtime
from drip.unsubscribe.service import leave_sequence, unsubscribe_contact

router = APIRouter()

#: The documented refusal of a tampered or unknown link.
BAD_LINK: dict[int | str, dict[str, object]] = {
    400: {"description": "The link is not valid", "content": {"text/html": {}}}
}


@router.get("/unsubscribe/{token}", response_class=HTMLResponse, responses=BAD_LINK)
def confirm_page(
    token: str, sequence: str | None = None, runtime: Runtime = Depends(get_runtime)
) -> HTMLResponse:
    """The page with the choice: this sequence, or everything."""
    try:
        runtime.signer.read(token)
    except BadToken:
        return page("bad_link.html", status_code=400)
    name = (
        runtime.catalog.get(sequence).definition.name
        if sequence and sequence in runtime.catalog
        else None
    )
    return page("unsubscribe.html", sequence_id=sequence, sequence_name=name)


@router.post("/unsubscribe/{token}", response_class=HTMLResponse, responses=BAD_LINK)
async def unsubscribe(
    token: str, request: Request, runtime: Runtime = Depends(get_runtime)
) -> HTMLResponse:
    """Unsubscribe: everything scheduled stops before this answers."""
    try:
        public_id = runtime.signer.read(token)
    except BadToken:
        return page("bad_link.html", status_code=400)
    form = await request.form()
    sequence_id = str(form.get("sequence") or "")
    one_sequence = form.get("scope") == "sequence" and sequence_id in runtime.catalog
    # The transaction waits for the contact's row lock, which a send batch holds across its
    # provider calls: in a worker thread, so the event loop (and /healthz) never waits with it.
    found = await run_in_threadpool(_unsubscribe, runtime, public_id, sequence_id, one_sequence)
    if not found:
        return page("bad_link.html", status_code=400)
    name = runtime.catalog.get(sequence_id).definition.name if one_sequence else None
    return page("unsubscribed.html", sequence_name=name)


def _unsubscribe(runtime: Runtime, public_id: str, sequence_id: str, one_sequence: bool) -> bool:
    """Stop one sequence or everything for `public_id`, audited; False for an unknown id."""
    now = utcnow()
    with transaction(runtime.sessions) as session:
        if one_sequence:
            found = leave_sequence(session, public_id, sequence_id, now=now)
        else:
            found = unsubscribe_contact(session, public_id, reason="unsubscribe link", now=now)
        if found:
            record_audit(
                session,
                action="contact.unsubscribe",
                operator="subscriber",
                now=now,
                reason="unsubscribe link",
                target=public_id,
                details={
                    "scope": "sequence" if one_sequence else "all",
                    "sequence": sequence_id or None,
                },
            )
    return found
