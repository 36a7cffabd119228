"""`drip webhooks add|list|remove|deliveries|replay`: outbound webhooks, audited like every
write. Only the database is needed: a replay is enqueued by the scheduler within a tick."""

from __future__ import annotations

import os

import typer

from drip.audit import current_operator
from drip.cli.common import BY, console, database_session, errors, exit_on, load_settings
from drip.cli.output import JSON, print_json, since, table
from drip.db import utcnow
from drip.errors import OperationRefused, WebhookConfigError
from drip.webhooks.endpoints import add_endpoint, list_endpoints, remove_endpoint
from drip.webhooks.events import EVENT_TYPES
from drip.webhooks.history import list_deliveries, replay

app = typer.Typer(
    help="Outbound webhooks: endpoints, what was delivered, replays.", no_args_is_help=True
)

REASON = typer.Option(None, "--reason", help="Why, for the audit trail.")


@app.command()
def add(
    url: str = typer.Argument(..., help="The receiver's URL (https outside development)."),
    events: str = typer.Option(
        ..., "--events", help=f"Comma-separated event types: {', '.join(EVENT_TYPES)}."
    ),
    secret_env: str = typer.Option(
        ...,
        "--secret-env",
        help="The environment variable holding the whsec_ secret (the secret is not stored).",
    ),
    by: str | None = BY,
) -> None:
    """Add an endpoint (or update and enable the one with this URL)."""
    development = not load_settings().is_production
    wanted = [e.strip() for e in events.split(",") if e.strip()]
    with exit_on(WebhookConfigError, code=2), database_session() as session:
        endpoint = add_endpoint(
            session,
            url,
            wanted,
            secret_env,
            development=development,
            operator=current_operator(by),
            now=utcnow(),
        )
        endpoint_id = endpoint.id
    console.print(f"endpoint {endpoint_id}: {url} ({', '.join(wanted)})", markup=False)
    if not os.environ.get(secret_env):
        console.print(
            f"note: {secret_env} is not set here; the worker needs it to sign", markup=False
        )


@app.command("list")
def list_command(as_json: bool = JSON) -> None:
    """Every endpoint: id, URL, event types, where its secret is read, source, state."""
    with database_session() as session:
        views = list_endpoints(session)
    rows = [
        {
            "id": v.id,
            "url": v.url,
            "events": v.events,
            "secret_env": v.secret_env,
            "source": v.source,
            "enabled": v.enabled,
            "disabled_reason": v.disabled_reason,
        }
        for v in views
    ]
    if as_json:
        print_json(rows)
        return
    table(
        "Webhook endpoints",
        ["id", "url", "events", "secret", "source", "state"],
        [
            [
                v.id,
                v.url,
                ",".join(v.events),
                v.secret_env,
                v.source,
                "enabled" if v.enabled else f"disabled: {v.disabled_reason}",
            ]
            for v in views
        ],
    )


@app.command()
def remove(
    endpoint: str = typer.Argument(..., metavar="ID|URL", help="The endpoint's id or URL."),
    reason: str | None = REASON,
    by: str | None = BY,
) -> None:
    """Stop sending to an endpoint; what it had pending is kept as failed."""
    with exit_on(OperationRefused), database_session() as session:
        removed = remove_endpoint(
            session, endpoint, operator=current_operator(by), now=utcnow(), reason=reason
        )
        url = removed.url
    console.print(f"endpoint {url} removed", markup=False)


@app.command()
def deliveries(
    failed: bool = typer.Option(False, "--failed", help="Only those kept as failed."),
    limit: int = typer.Option(50, "--limit", min=1, max=10_000, help="At most this many."),
    as_json: bool = JSON,
) -> None:
    """The newest outbound events: id, event, endpoint, state, attempts, last answer."""
    with database_session() as session:
        views = list_deliveries(session, failed_only=failed, limit=limit)
    if as_json:
        print_json([v.__dict__ for v in views])
        return
    table(
        "Webhook deliveries",
        ["id", "event id", "type", "url", "status", "attempts", "next try", "last answer"],
        [
            [
                v.id,
                v.event_id,
                v.event_type,
                v.url,
                v.status,
                v.attempts,
                v.next_attempt_at.isoformat(timespec="seconds") if v.next_attempt_at else "",
                v.last_error or (str(v.last_status_code) if v.last_status_code else ""),
            ]
            for v in views
        ],
    )


@app.command("replay")
def replay_command(
    ident: str | None = typer.Argument(
        None, metavar="[ID]", help="A delivery's id, or an event id (evt_...) for every endpoint."
    ),
    since_text: str | None = typer.Option(
        None, "--since", help="Every failed delivery created since, e.g. 2h."
    ),
    include_delivered: bool = typer.Option(
        False, "--all", help="With --since: delivered ones too."
    ),
    reason: str | None = REASON,
    by: str | None = BY,
) -> None:
    """Send deliveries again, with the same event ids, within the scheduler's next tick."""
    if (ident is None) == (since_text is None):
        errors.print("give a delivery or event id, or --since (e.g. --since 2h)", markup=False)
        raise typer.Exit(2)
    with exit_on(OperationRefused), database_session() as session:
        ids = replay(
            session,
            ident=ident,
            since=since(since_text),
            include_delivered=include_delivered,
            operator=current_operator(by),
            now=utcnow(),
            reason=reason,
        )
    console.print(f"{len(ids)} deliveries due again", markup=False)
