"""The endpoints table: what `drip webhooks add|remove|list` and `webhooks.yaml` write.

All endpoints live in the database, so the outbox INSERT on the send path can join on
them: the file's are synced in at startup (`sync_file_endpoints`). An endpoint is never
deleted while it has history; removing it (or a 410 from the receiver) disables it,
drops its subscriptions and fails what it had pending. `add` on a known URL updates it
and enables it again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from drip.audit import record_audit
from drip.errors import OperationRefused, Problem, WebhookConfigError
from drip.models import (
    EndpointSource,
    WebhookEndpoint,
    WebhookEvent,
    WebhookStatus,
    WebhookSubscription,
)
from drip.webhooks.config_file import FileEndpoints, check_events, check_secret_env, check_url

#: Why a file endpoint that left the file is disabled (and enabled again if it comes back).
REMOVED_FROM_FILE = "removed from webhooks.yaml"


@dataclass(frozen=True)
class EndpointView:
    """An endpoint as `drip webhooks list` shows it."""

    id: int
    url: str
    events: list[str]
    secret_env: str
    source: str
    enabled: bool
    disabled_reason: str | None


def add_endpoint(
    session: Session,
    url: str,
    events: list[str],
    secret_env: str,
    *,
    development: bool,
    operator: str,
    now: datetime,
) -> WebhookEndpoint:
    """Add an endpoint, or update and enable the one with this URL; audited.
    WebhookConfigError names each bad argument."""
    problems = []
    checks: list[tuple[str, Callable[[], object]]] = [
        ("url", lambda: check_url(url, development=development)),
        ("--events", lambda: check_events(events)),
        ("--secret-env", lambda: check_secret_env(secret_env)),
    ]
    for name, check in checks:
        try:
            check()
        except ValueError as exc:
            problems.append(Problem("drip webhooks add", None, name, str(exc)))
    if problems:
        raise WebhookConfigError(problems)
    url, events = check_url(url, development=development), check_events(events)
    endpoint = session.scalars(
        select(WebhookEndpoint).where(WebhookEndpoint.url == url).with_for_update()
    ).one_or_none()
    if endpoint is None:
        endpoint = WebhookEndpoint(url=url, source=EndpointSource.CLI, created_at=now)
        session.add(endpoint)
    endpoint.secret_env, endpoint.enabled, endpoint.disabled_reason = secret_env, True, None
    endpoint.updated_at = now
    session.flush()
    _subscribe(session, endpoint.id, events)
    record_audit(
        session,
        action="webhooks.add",
        operator=operator,
        now=now,
        target=url,
        details={"events": events, "secret_env": secret_env, "endpoint_id": endpoint.id},
    )
    return endpoint


def remove_endpoint(
    session: Session, ident: str, *, operator: str, now: datetime, reason: str | None = None
) -> WebhookEndpoint:
    """Disable the endpoint with this id or URL and fail what it had pending; audited.
    An endpoint of `webhooks.yaml` is removed from the file instead."""
    endpoint = find_endpoint(session, ident)
    if endpoint.source is EndpointSource.FILE and endpoint.disabled_reason != REMOVED_FROM_FILE:
        raise OperationRefused(
            f"{endpoint.url} is declared in webhooks.yaml: remove it there and restart"
        )
    failed = disable_endpoint(session, endpoint, reason=f"removed by {operator}", now=now)
    record_audit(
        session,
        action="webhooks.remove",
        operator=operator,
        now=now,
        target=endpoint.url,
        reason=reason,
        details={"endpoint_id": endpoint.id, "pending_failed": failed},
    )
    return endpoint


def find_endpoint(session: Session, ident: str) -> WebhookEndpoint:
    """The endpoint with this id or URL; OperationRefused when there is none."""
    where = WebhookEndpoint.id == int(ident) if ident.isdigit() else WebhookEndpoint.url == ident
    endpoint = session.scalars(select(WebhookEndpoint).where(where)).one_or_none()
    if endpoint is None:
        raise OperationRefused(f"no webhook endpoint {ident!r} (see drip webhooks list)")
    return endpoint


def disable_endpoint(
    session: Session, endpoint: WebhookEndpoint, *, reason: str, now: datetime
) -> int:
    """Stop sending to the endpoint: no new events, pending ones failed; return how many."""
    endpoint.enabled, endpoint.disabled_reason, endpoint.updated_at = False, reason, now
    session.execute(
        delete(WebhookSubscription).where(WebhookSubscription.endpoint_id == endpoint.id)
    )
    result = session.execute(
        update(WebhookEvent)
        .where(
            WebhookEvent.endpoint_id == endpoint.id,
            WebhookEvent.status == WebhookStatus.PENDING,
        )
        .values(status=WebhookStatus.FAILED, last_error=f"endpoint disabled: {reason}")
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def list_endpoints(session: Session) -> list[EndpointView]:
    """Every endpoint, enabled or not, with the event types it hears."""
    subscriptions: dict[int, list[str]] = {}
    for endpoint_id, event_type in session.execute(
        select(WebhookSubscription.endpoint_id, WebhookSubscription.event_type).order_by(
            WebhookSubscription.event_type
        )
    ):
        subscriptions.setdefault(endpoint_id, []).append(event_type)
    return [
        EndpointView(
            id=e.id,
            url=e.url,
            events=subscriptions.get(e.id, []),
            secret_env=e.secret_env,
            source=e.source.value,
            enabled=e.enabled,
            disabled_reason=e.disabled_reason,
        )
        for e in session.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.id))
    ]


def sync_file_endpoints(session: Session, file: FileEndpoints, *, now: datetime) -> None:
    """Make the database hold `webhooks.yaml`'s endpoints: add or update each, and disable
    file endpoints the file no longer lists. An endpoint a 410 disabled stays disabled."""
    declared = {spec.url: spec for spec in file.endpoints}
    known = {
        e.url: e
        for e in session.scalars(
            select(WebhookEndpoint).order_by(WebhookEndpoint.id).with_for_update()
        )
    }
    for url, spec in declared.items():
        endpoint = known.get(url)
        if endpoint is None:
            endpoint = WebhookEndpoint(
                url=url, source=EndpointSource.FILE, created_at=now, enabled=True
            )
            session.add(endpoint)
        elif endpoint.disabled_reason == REMOVED_FROM_FILE or endpoint.source is EndpointSource.CLI:
            endpoint.enabled, endpoint.disabled_reason = True, None
        endpoint.source, endpoint.secret_env, endpoint.updated_at = (
            EndpointSource.FILE,
            spec.secret_env,
            now,
        )
        session.flush()
        if endpoint.enabled:
            _subscribe(session, endpoint.id, list(spec.events))
    for url, endpoint in known.items():
        if endpoint.source is EndpointSource.FILE and url not in declared and endpoint.enabled:
            disable_endpoint(session, endpoint, reason=REMOVED_FROM_FILE, now=now)


def _subscribe(session: Session, endpoint_id: int, events: list[str]) -> None:
    """Replace the endpoint's event types with `events`."""
    current = set(
        session.scalars(
            select(WebhookSubscription.event_type).where(
                WebhookSubscription.endpoint_id == endpoint_id
            )
        )
    )
    wanted = set(events)
    if current - wanted:
        session.execute(
            delete(WebhookSubscription).where(
                WebhookSubscription.endpoint_id == endpoint_id,
                WebhookSubscription.event_type.in_(current - wanted),
            )
        )
    session.add_all(
        WebhookSubscription(endpoint_id=endpoint_id, event_type=t) for t in sorted(wanted - current)
    )
    session.flush()
