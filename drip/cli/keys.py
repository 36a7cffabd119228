"""`drip keys create|list|revoke`: API keys for other apps (`/v1`), audited like every write."""

from __future__ import annotations

from typing import Any

import typer

from drip.audit import current_operator
from drip.cli.common import BY, console, database_session, exit_on
from drip.cli.output import JSON, print_json, table
from drip.db import utcnow
from drip.errors import OperationRefused
from drip.keys.scopes import Scope
from drip.keys.store import create_key, list_keys, revoke_key

app = typer.Typer(help="API keys for other apps: create, list, revoke.", no_args_is_help=True)

REASON = typer.Option(None, "--reason", help="Why, for the audit trail.")
SCOPES = ", ".join(scope.value for scope in Scope)


@app.command()
def create(
    name: str = typer.Argument(..., help="What the key is for, e.g. the app that uses it."),
    scope: str = typer.Option(..., "--scope", help=f"Comma-separated scopes: {SCOPES}."),
    by: str | None = BY,
    as_json: bool = JSON,
) -> None:
    """Create a key and print it once: only its hash is kept."""
    with exit_on(ValueError, code=2), database_session() as session:
        key, new = create_key(session, name, scope, operator=current_operator(by), now=utcnow())
        scopes = list(key.scopes)
    if as_json:
        print_json({"key": new.token, "prefix": new.prefix, "name": key.name, "scopes": scopes})
        return
    print(new.token)  # alone on its line, for copying and for scripts
    console.print(
        f"key {new.prefix} ({', '.join(scopes)}): store it now, it is not shown again",
        markup=False,
    )


@app.command("list")
def list_command(as_json: bool = JSON) -> None:
    """Every key: prefix, name, scopes, created, last used (to the minute), revoked."""
    with database_session() as session:
        rows: list[dict[str, Any]] = [
            {
                "prefix": k.prefix,
                "name": k.name,
                "scopes": list(k.scopes),
                "created_at": k.created_at.isoformat(),
                "last_used_at": k.last_used_at.isoformat() if k.last_used_at else None,
                "revoked_at": k.revoked_at.isoformat() if k.revoked_at else None,
            }
            for k in list_keys(session)
        ]
    if as_json:
        print_json(rows)
        return
    table(
        "API keys",
        ["prefix", "name", "scopes", "created", "last used", "revoked"],
        [
            [
                r["prefix"],
                r["name"],
                ",".join(r["scopes"]),
                r["created_at"],
                r["last_used_at"],
                r["revoked_at"],
            ]
            for r in rows
        ],
    )


@app.command()
def revoke(
    key: str = typer.Argument(..., metavar="PREFIX|NAME", help="The key's prefix, or its name."),
    reason: str | None = REASON,
    by: str | None = BY,
) -> None:
    """Revoke a key: every request with it gets 401 from now on."""
    with exit_on(OperationRefused), database_session() as session:
        revoked = revoke_key(
            session, key, operator=current_operator(by), now=utcnow(), reason=reason
        )
        prefix = revoked.prefix
    console.print(f"key {prefix} revoked", markup=False)
