"""`/admin`: the read-only funnel page for people who would rather look than read.

Guarded by `DRIP_ADMIN_TOKEN` (at least 32 characters; a shorter one stops the settings
from loading). A script sends it as `Authorization: Bearer <token>`; a person types it
into the login form, whose POST sets a session cookie (HttpOnly, SameSite=Strict, Secure
over HTTPS, signed with the token and valid for `SESSION_MAX_AGE`). The token is never
accepted from a URL, and a subscriber is looked up by a POST, so neither the token nor an
address lands in an access log, the browser's history or a `Referer`. Without a valid
token or cookie the page answers 401 with the login form; with no token configured the
page is off (404).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from itsdangerous import BadSignature, TimestampSigner

from drip.api.bearer import bearer_token, token_matches
from drip.api.deps import get_runtime
from drip.api.health import lag_limit
from drip.api.pages import page
from drip.contacts.privacy import find_contact
from drip.db import utcnow
from drip.reports.chart import funnel_svg
from drip.reports.funnel import (
    COLUMNS,
    OPENS_NOTE,
    funnel,
    link_funnel,
    recent_failures,
    scheduler_lag,
)
from drip.reports.timeline import contact_timeline
from drip.reports.variants import subject_tests
from drip.runtime import Runtime

router = APIRouter(include_in_schema=False)

#: The session cookie the login form sets.
SESSION_COOKIE = "drip_admin"

#: Seconds a login lasts.
SESSION_MAX_AGE = 8 * 3600


def _signer(admin_token: str) -> TimestampSigner:
    # Keyed by the admin token itself: changing the token ends every session.
    return TimestampSigner(admin_token, salt="drip.admin-session")


def _refusal(runtime: Runtime, request: Request) -> Response | None:
    """None when the request carries the admin token or a live session; else the answer."""
    expected = runtime.settings.admin_token
    if not expected:
        return JSONResponse(
            {"detail": "the admin page is off: set DRIP_ADMIN_TOKEN"}, status_code=404
        )
    if token_matches(bearer_token(request), expected):
        return None
    cookie = request.cookies.get(SESSION_COOKIE, "")
    try:
        _signer(expected).unsign(cookie, max_age=SESSION_MAX_AGE)
        return None
    except BadSignature:
        return _login_page()


def _login_page(error: str | None = None) -> HTMLResponse:
    return page(
        "admin_login.html", status_code=401, error=error, headers={"WWW-Authenticate": "Bearer"}
    )


@router.get("/admin", response_class=HTMLResponse)
def admin(request: Request, runtime: Runtime = Depends(get_runtime)) -> Response:
    """The funnel per step (every step of each sequence, in file order) as a chart and a
    table, human clicks per tracked link, subject tests, the scheduler's lag, recent
    failures."""
    refusal = _refusal(runtime, request)
    if refusal is not None:
        return refusal
    with runtime.sessions() as session:
        steps = funnel(session, runtime.catalog)
        links = link_funnel(session, runtime.catalog)
        tests = subject_tests(session, runtime.catalog)
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
            {
                "name": name,
                "steps": rows,
                "svg": funnel_svg(rows, title=f"{name}: funnel by step"),
                "links": [line for line in links if line.sequence == sequence_id],
                "tests": [test for test in tests if test.sequence == sequence_id],
            }
        )
    return page(
        "admin.html",
        sequences=sequences,
        columns=COLUMNS,
        opens_note=OPENS_NOTE.format(machine=sum(s.machine_opened for s in steps)),
        lag=lag,
        lag_ok=lag.seconds <= lag_limit(runtime),
        failures=failures,
    )


@router.post("/admin/login", response_class=HTMLResponse)
def login(
    request: Request, token: str = Form(""), runtime: Runtime = Depends(get_runtime)
) -> Response:
    """Check the typed token; on success set the session cookie and go to `/admin`."""
    expected = runtime.settings.admin_token
    if not expected:
        return JSONResponse(
            {"detail": "the admin page is off: set DRIP_ADMIN_TOKEN"}, status_code=404
        )
    if not token_matches(token, expected):
        return _login_page("That token is not the admin token.")
    response = RedirectResponse("/admin", status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        _signer(expected).sign(b"admin").decode(),
        max_age=SESSION_MAX_AGE,
        path="/admin",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https" or runtime.settings.base_url.startswith("https://"),
    )
    return response


@router.post("/admin/logout", response_class=HTMLResponse)
def logout() -> Response:
    """Forget the session cookie."""
    response = RedirectResponse("/admin", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/admin", httponly=True, samesite="strict")
    return response


@router.post("/admin/contact", response_class=HTMLResponse)
def admin_contact(
    request: Request, email: str = Form(""), runtime: Runtime = Depends(get_runtime)
) -> Response:
    """One subscriber's timeline, looked up by the address posted in the form."""
    refusal = _refusal(runtime, request)
    if refusal is not None:
        return refusal
    timeline = None
    with runtime.sessions() as session:
        try:
            contact = find_contact(session, email)
        except ValueError:
            contact = None
        if contact is not None:
            timeline = contact_timeline(session, contact)
    return page("admin_contact.html", timeline=timeline.as_dict() if timeline else None)
