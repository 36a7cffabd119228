"""`GET /admin`: the read-only funnel page for people who would rather look than read.

Guarded by `DRIP_ADMIN_TOKEN`, given as `Authorization: Bearer <token>` or `?token=`;
without it the page answers 401, and with no token configured it is off (404).
"""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from drip.api.deps import get_runtime
from drip.api.health import lag_limit
from drip.api.pages import page
from drip.contacts.privacy import find_contact
from drip.db import utcnow
from drip.reports.chart import funnel_svg
from drip.reports.funnel import COLUMNS, funnel, recent_failures, scheduler_lag
from drip.reports.timeline import contact_timeline
from drip.runtime import Runtime

router = APIRouter(include_in_schema=False)


def _token(request: Request, runtime: Runtime) -> str | Response:
    expected = runtime.settings.admin_token
    if not expected:
        return JSONResponse(
            {"detail": "the admin page is off: set DRIP_ADMIN_TOKEN"}, status_code=404
        )
    given = request.query_params.get("token") or request.headers.get(
        "authorization", ""
    ).removeprefix("Bearer ")
    if not secrets.compare_digest(given.encode(), expected.encode()):
        return JSONResponse(
            {"detail": "a valid admin token is required"},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
    return given


@router.get("/admin", response_class=HTMLResponse)
def admin(request: Request, runtime: Runtime = Depends(get_runtime)) -> Response:
    token = _token(request, runtime)
    if isinstance(token, Response):
        return token
    with runtime.sessions() as session:
        steps = funnel(session, runtime.catalog)
        lag = scheduler_lag(session, now=utcnow())
        failures = recent_failures(session)
    sequences = []
    for sequence_id in dict.fromkeys(s.sequence for s in steps):
        rows = [s for s in steps if s.sequence == sequence_id]
        name = (
            runtime.catalog.get(sequence_id).definition.name
            if sequence_id in runtime.catalog
            else sequence_id
        )
        sequences.append(
            {"name": name, "steps": rows, "svg": funnel_svg(rows, title=f"{name}: funnel by step")}
        )
    return page(
        "admin.html",
        token=token,
        sequences=sequences,
        columns=COLUMNS,
        lag=lag,
        lag_ok=lag.seconds <= lag_limit(runtime),
        failures=failures,
    )


@router.get("/admin/contact", response_class=HTMLResponse)
def admin_contact(
    request: Request, email: str = "", runtime: Runtime = Depends(get_runtime)
) -> Response:
    token = _token(request, runtime)
    if isinstance(token, Response):
        return token
    timeline = None
    with runtime.sessions() as session:
        try:
            contact = find_contact(session, email)
        except ValueError:
            contact = None
        if contact is not None:
            timeline = contact_timeline(session, contact)
    return page(
        "admin_contact.html", token=token, timeline=timeline.as_dict() if timeline else None
    )
