"""Helpers for tests of the `/v1` API: a key with chosen scopes, and its header."""

from __future__ import annotations

from sqlalchemy import text

from drip.db import transaction, utcnow
from drip.keys.scopes import Scope
from drip.keys.store import create_key
from drip.runtime import Runtime

#: Every scope a key may have.
ALL_SCOPES = [scope.value for scope in Scope]


def new_key(runtime: Runtime, *scopes: str, name: str = "test app") -> str:
    """A new key with `scopes` (default: all of them), as the client sends it."""
    with transaction(runtime.sessions) as session:
        _, new = create_key(
            session, name, list(scopes) or ALL_SCOPES, operator="tests", now=utcnow()
        )
    return new.token


def bearer(token: str) -> dict[str, str]:
    """The `Authorization` header for `token`."""
    return {"Authorization": f"Bearer {token}"}


def lock_waiters(runtime: Runtime) -> int:
    """How many sessions of this database wait for a lock right now."""
    with runtime.engine.connect() as connection:
        return int(
            connection.execute(
                text(
                    "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                    "WHERE NOT l.granted AND a.datname = current_database()"
                )
            ).scalar_one()
        )
