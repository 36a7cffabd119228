"""`emit`: an event goes into the outbox in the transaction of the change it reports.

One INSERT ... SELECT per call, whatever the number of events: the events travel as one
JSON parameter, joined to the endpoints that hear their type. No endpoint hearing a type
means no row, so a send batch nobody listens to costs one statement that inserts nothing.
Because the row commits or rolls back with the change, no event is lost after a commit
and none is invented by a rollback.

The new rows' ids wait in `session.info` until the transaction commits; the hook that
`deliver_after_commit` installs then enqueues them. A message lost on the way (Redis
down, a process killed between commit and enqueue) is found by the scheduler's recovery
job (`drip.webhooks.recovery`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import cache
from typing import Any

import structlog
from sqlalchemy import TextClause, bindparam, event, text
from sqlalchemy.orm import Session, sessionmaker

from drip.models.base import UTCDateTime
from drip.webhooks.events import Event
from drip.webhooks.retries import RETRY_WINDOW

log = structlog.get_logger(__name__)

#: Where the ids of rows emitted in a transaction wait for its commit.
PENDING_IDS = "drip.webhooks.emitted"


def insert_outbox_rows(
    source: str,
    *,
    event_id: str,
    event_type: str,
    contact_id: str,
    data: str,
    occurred_at: str,
    now: str,
    give_up_at: str,
) -> str:
    """The one INSERT of outbox rows (this module's `emit`, and the signup statement of
    `drip.signup.first_signup`): for each event read from `source` (a FROM item), a row per
    enabled endpoint subscribed to its type, pending, due at once and given up at
    `give_up_at`, returning the new ids. The other arguments are SQL expressions over
    `source` or parameters, in the caller's placeholder style: code's constants, never
    input (input travels as parameters)."""
    return f"""
        INSERT INTO webhook_events (
            event_id, endpoint_id, event_type, contact_id, data, occurred_at, created_at,
            status, attempts, next_attempt_at, give_up_at, enqueued_at
        )
        SELECT {event_id}, s.endpoint_id, s.event_type, {contact_id}, {data}, {occurred_at},
               {now}, 'pending', 0, {now}, {give_up_at}, {now}
        FROM {source}
        JOIN webhook_subscriptions AS s ON s.event_type = {event_type}
        JOIN webhook_endpoints AS e ON e.id = s.endpoint_id AND e.enabled
        RETURNING id
    """  # noqa: S608


_INSERT = {
    "postgresql": insert_outbox_rows(
        "jsonb_array_elements(CAST(:events AS jsonb)) AS r(value)",
        event_id="r.value->>'id'",
        event_type="r.value->>'type'",
        contact_id="(r.value->>'contact_id')::bigint",
        data="(r.value->'data')::json",
        occurred_at="(r.value->>'occurred_at')::timestamptz",
        now=":now",
        give_up_at=":give_up_at",
    ),
    "sqlite": insert_outbox_rows(
        "json_each(:events) AS r",
        event_id="json_extract(r.value, '$.id')",
        event_type="json_extract(r.value, '$.type')",
        contact_id="json_extract(r.value, '$.contact_id')",
        data="json_extract(r.value, '$.data')",
        occurred_at="json_extract(r.value, '$.occurred_at')",
        now=":now",
        give_up_at=":give_up_at",
    ),
}


@cache
def _insert(dialect: str) -> TextClause:
    return text(_INSERT[dialect]).bindparams(
        bindparam("now", type_=UTCDateTime()), bindparam("give_up_at", type_=UTCDateTime())
    )


def emit(session: Session, events: Sequence[Event], *, now: datetime) -> None:
    """Put `events` in the outbox, one row per endpoint that hears each, in one statement
    of the caller's transaction; nothing at all for no events."""
    if not events:
        return
    dialect = session.get_bind().dialect.name
    rows = [
        {
            "id": e.id,
            "type": e.type.value,
            "contact_id": e.contact_id,
            "data": dict(e.data),
            "occurred_at": _stored_time(e.occurred_at, dialect),
        }
        for e in events
    ]
    ids = session.scalars(
        _insert(dialect),
        {"events": json.dumps(rows, default=str), "now": now, "give_up_at": now + RETRY_WINDOW},
    ).all()
    if ids:
        session.info.setdefault(PENDING_IDS, []).extend(ids)


def _stored_time(moment: datetime, dialect: str) -> str:
    """A time as the column stores it: with its zone on PostgreSQL, naive UTC on SQLite."""
    utc = moment.astimezone(UTC)
    if dialect == "postgresql":
        return utc.isoformat()
    return utc.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def deliver_after_commit(
    sessions: sessionmaker[Session], enqueue: Callable[[list[int]], None]
) -> None:
    """Enqueue the rows each transaction of `sessions` emitted, once it commits. A failed
    enqueue is logged and left to the recovery job: the commit already happened."""

    def after_commit(session: Session) -> None:
        ids: list[int] | None = session.info.pop(PENDING_IDS, None)
        if not ids:
            return
        try:
            enqueue(ids)
        except Exception as exc:  # Redis down: the recovery job enqueues them later
            log.warning("webhooks.enqueue_failed", count=len(ids), error=str(exc))

    def after_rollback(session: Session) -> None:
        session.info.pop(PENDING_IDS, None)

    event.listen(sessions, "after_commit", after_commit)
    event.listen(sessions, "after_rollback", after_rollback)


def pending_ids(session: Session) -> list[int]:
    """The ids emitted in the session's open transaction (for tests and callers that
    enqueue themselves)."""
    ids: list[Any] = session.info.get(PENDING_IDS, [])
    return list(ids)
