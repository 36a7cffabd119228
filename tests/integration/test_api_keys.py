"""API keys: only a hash is stored; a wrong, malformed, missing or revoked key gets 401 with
`WWW-Authenticate`, a key without the route's scope 403 naming it; use is recorded at most
once a minute; creating and revoking are audited; `drip keys` prints a key once."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select
from typer.testing import CliRunner

from drip.cli.main import app as cli
from drip.db import transaction, utcnow
from drip.errors import OperationRefused
from drip.keys.scopes import Scope
from drip.keys.store import revoke_key
from drip.keys.verify import TOUCH_EVERY, authenticate
from drip.models import ApiKey, AuditEntry
from drip.runtime import Runtime
from tests.integration.api_keys import bearer, new_key
from tests.integration.helpers import api_client

EVENT = {"id": "evt-1", "email": "keys@example.com", "name": "purchased"}


def test_a_valid_key_with_the_scope_is_let_through(runtime: Runtime) -> None:
    token = new_key(runtime, "events:write")
    response = api_client(runtime).post("/v1/events", json=EVENT, headers=bearer(token))
    assert response.status_code == 202, response.text


@pytest.mark.parametrize(
    "header",
    [
        None,
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "Bearer drip_00000000_" + "A" * 43,  # well formed, unknown prefix
        "Bearer not-a-key",
    ],
)
def test_a_missing_or_unknown_key_gets_401_with_a_challenge(
    runtime: Runtime, header: str | None
) -> None:
    headers = {"Authorization": header} if header is not None else {}
    response = api_client(runtime).post("/v1/events", json=EVENT, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "key" in response.json()["detail"]


def test_the_right_prefix_with_a_wrong_secret_gets_401(runtime: Runtime) -> None:
    token = new_key(runtime, "events:write")
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    response = api_client(runtime).post("/v1/events", json=EVENT, headers=bearer(forged))
    assert response.status_code == 401


def test_a_revoked_key_gets_401(runtime: Runtime) -> None:
    token = new_key(runtime, "events:write", name="old crm")
    client = api_client(runtime)
    assert client.post("/v1/events", json=EVENT, headers=bearer(token)).status_code == 202
    with transaction(runtime.sessions) as session:
        revoke_key(session, "old crm", operator="ops", now=utcnow(), reason="leaked")
    response = client.post("/v1/events", json=EVENT, headers=bearer(token))
    assert response.status_code == 401
    assert response.json()["detail"] == "the API key was revoked"


@pytest.mark.parametrize(
    ("method", "path", "scope"),
    [
        ("POST", "/v1/events", "events:write"),
        ("POST", "/v1/enrollments", "enrollments:write"),
        ("GET", "/v1/contacts/a@example.com", "contacts:read"),
        ("PATCH", "/v1/contacts/a@example.com", "contacts:write"),
    ],
)
def test_a_key_without_the_scope_gets_403_naming_it(
    runtime: Runtime, method: str, path: str, scope: str
) -> None:
    others = [s.value for s in Scope if s.value != scope]
    token = new_key(runtime, *others)
    response = api_client(runtime).request(method, path, json={}, headers=bearer(token))
    assert response.status_code == 403
    assert scope in response.json()["detail"]
    assert f'scope="{scope}"' in response.headers["www-authenticate"]


def test_use_is_recorded_at_most_once_a_minute(runtime: Runtime) -> None:
    token = new_key(runtime, "events:write")
    start = utcnow()

    writes: list[str] = []

    def count_writes(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.startswith("UPDATE api_keys"):
            writes.append(statement)

    def used_at(now_offset: timedelta) -> object:
        with transaction(runtime.sessions) as session:
            authenticate(session, token, scope=Scope.EVENTS_WRITE, now=start + now_offset)
        with runtime.sessions() as session:
            return session.scalars(select(ApiKey.last_used_at)).one()

    event.listen(runtime.engine, "before_cursor_execute", count_writes)
    try:
        assert used_at(timedelta(0)) == start
        # Within the minute: not written again, not even tried (one read per request)
        assert used_at(timedelta(seconds=30)) == start
        assert len(writes) == 1
        assert used_at(TOUCH_EVERY) == start + TOUCH_EVERY
        assert len(writes) == 2
    finally:
        event.remove(runtime.engine, "before_cursor_execute", count_writes)
    # And through the API
    api_client(runtime).post("/v1/events", json=EVENT, headers=bearer(token))
    with runtime.sessions() as session:
        last = session.scalars(select(ApiKey.last_used_at)).one()
    assert last is not None
    assert last >= start + TOUCH_EVERY


def test_only_a_hash_is_stored_and_changes_are_audited(runtime: Runtime) -> None:
    token = new_key(runtime, "contacts:read", name="reporting")
    with transaction(runtime.sessions) as session:
        revoke_key(session, "reporting", operator="ops", now=utcnow())
    with runtime.sessions() as session:
        key = session.scalars(select(ApiKey)).one()
        audit = session.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
        stored = json.dumps(
            [[str(getattr(key, c.key)) for c in ApiKey.__table__.columns]]
            + [[a.action, a.target, a.reason, json.dumps(a.details)] for a in audit]
        )
    secret = token.rsplit("_", 1)[1]
    assert secret not in stored
    assert token not in stored
    assert token.startswith(f"drip_{key.prefix}_")
    assert [(a.action, a.target, a.operator) for a in audit] == [
        ("keys.create", f"key:{key.prefix}", "tests"),
        ("keys.revoke", f"key:{key.prefix}", "ops"),
    ]


def test_the_cli_prints_a_key_once_lists_and_revokes(runtime: Runtime, tmp_path: Path) -> None:
    env = {
        "DRIP_DATABASE_URL": runtime.settings.database_url,
        "DRIP_STATE_DIR": str(tmp_path / ".drip"),
        "USER": "cli-operator",
    }
    runner = CliRunner()
    created = runner.invoke(
        cli,
        ["keys", "create", "crm", "--scope", "events:write,contacts:read", "--json"],
        env=env,
    )
    assert created.exit_code == 0, created.output
    made = json.loads(created.output)
    assert made["scopes"] == ["events:write", "contacts:read"]
    # The key works, and is never shown again
    response = api_client(runtime).post("/v1/events", json=EVENT, headers=bearer(made["key"]))
    assert response.status_code == 202
    listed = runner.invoke(cli, ["keys", "list", "--json"], env=env)
    assert listed.exit_code == 0, listed.output
    assert made["key"] not in listed.output
    (row,) = json.loads(listed.output)
    assert (row["prefix"], row["name"], row["revoked_at"]) == (made["prefix"], "crm", None)
    assert row["last_used_at"] is not None
    # A bad scope is refused by name; revoking by prefix works once
    bad = runner.invoke(cli, ["keys", "create", "x", "--scope", "events:delete"], env=env)
    assert bad.exit_code == 2
    assert "events:delete" in bad.output
    revoked = runner.invoke(cli, ["keys", "revoke", made["prefix"], "--reason", "rotated"], env=env)
    assert revoked.exit_code == 0, revoked.output
    again = runner.invoke(cli, ["keys", "revoke", made["prefix"]], env=env)
    assert again.exit_code == 1
    assert "already revoked" in again.output
    with runtime.sessions() as session:
        audit = session.scalars(select(AuditEntry.operator).order_by(AuditEntry.id)).all()
    assert audit == ["cli-operator", "cli-operator"]
    assert (
        api_client(runtime).post("/v1/events", json=EVENT, headers=bearer(made["key"])).status_code
        == 401
    )


def test_revoking_by_a_name_two_active_keys_share_is_refused(runtime: Runtime) -> None:
    first, second = new_key(runtime, name="crm"), new_key(runtime, name="crm")
    with (
        transaction(runtime.sessions) as session,
        pytest.raises(OperationRefused, match="2 active"),
    ):
        revoke_key(session, "crm", operator="ops", now=utcnow())
    with transaction(runtime.sessions) as session:
        revoke_key(session, first.split("_")[1], operator="ops", now=utcnow())
    with transaction(runtime.sessions) as session:
        assert revoke_key(session, "crm", operator="ops", now=utcnow()).prefix in second
    client = api_client(runtime)
    for token in (first, second):
        assert client.post("/v1/events", json=EVENT, headers=bearer(token)).status_code == 401
