"""Store provider events once each, keyed by SendGrid's `sg_event_id`.

Replays (SendGrid retries a batch it thinks failed) insert nothing and so have no
second effect: the id goes into `provider_event_ids` first (its primary key), and the event
is stored only when that insert added a row. A separate table because `provider_events` is
partitioned by month on PostgreSQL, where a unique key must contain the partition key; the
ids are kept as long as the events (`DRIP_EVENT_RETENTION`), far beyond SendGrid's retries.

Each stored event is marked when it is its delivery's first of its name (and its first
machine open): the funnel counts those rows as they are stored (`drip.reports.counting`),
so a mark must be exact. On PostgreSQL the batch first takes each of its deliveries'
advisory lock, in ascending order (two batches never deadlock), until commit: two batches
stored at once with an open of the same delivery would otherwise both find no earlier
open and both mark theirs first; the second now waits, then sees the first's row.

An event without an id gets one from a hash of its content. The delivery is found
through `delivery_id`, which drip sets in `custom_args` and SendGrid returns
as a top-level field of every event.

An event about a forgotten contact, or about an address drip does not know, is stored
redacted (`drip.contacts.privacy`): its address, IP, user agent and reason text never
reach the database.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Integer, column, exists, func, insert, select
from sqlalchemy.orm import Session

from drip.contacts.privacy import redact_payload, redactions
from drip.db import upsert_statement
from drip.models import ProviderEvent, ProviderEventId

#: The advisory lock class of a delivery's events (`pg_advisory_xact_lock(class, key)`).
DELIVERY_LOCK_CLASS = 0x6472_6965

#: How many advisory locks a batch may hold at most (PostgreSQL's lock table holds
#: max_locks_per_transaction x max_connections, 6,400 by default, for every session).
LOCK_BUCKETS = 1024


def event_id(event: dict[str, Any]) -> str:
    """SendGrid's id for the event, or a stable hash of its content."""
    given = event.get("sg_event_id")
    if isinstance(given, str) and given:
        return given[:200]
    return "sha256:" + hashlib.sha256(json.dumps(event, sort_keys=True).encode()).hexdigest()


def delivery_of(event: dict[str, Any]) -> int | None:
    """The drip delivery an event is about, from its `delivery_id` custom arg."""
    value = event.get("delivery_id")
    try:
        number = int(str(value))
    except (TypeError, ValueError):
        return None
    return number if 0 < number < 2**63 else None


def occurred_at(event: dict[str, Any]) -> datetime | None:
    """When the provider says the event happened (its `timestamp`), or None when unreadable."""
    value = event.get("timestamp")
    try:
        return datetime.fromtimestamp(float(value), tz=UTC) if value is not None else None
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def store_events(session: Session, events: list[dict[str, Any]], *, now: datetime) -> list[int]:
    """Insert the events not seen before; return the new rows' ids. The payload of an event
    about a forgotten contact, or about no known contact, is stored redacted."""
    redacted = redactions(
        session,
        [(delivery_of(e), e["email"] if isinstance(e.get("email"), str) else None) for e in events],
    )
    lock_deliveries(session, [delivery_of(e) for e in events])
    stored: list[int] = []
    for event, redact in zip(events, redacted, strict=True):
        seen = session.scalar(
            upsert_statement(session, ProviderEventId)
            .values(sg_event_id=event_id(event), received_at=now)
            .on_conflict_do_nothing(index_elements=["sg_event_id"])
            .returning(ProviderEventId.sg_event_id)
        )
        if seen is None:
            continue
        name = str(event.get("event") or "unknown")[:32]
        delivery = delivery_of(event)
        machine = name == "open" and event.get("sg_machine_open") is True
        first = delivery is not None and not _has(session, delivery, ProviderEvent.event == name)
        first_machine = machine and not _has(
            session, delivery, ProviderEvent.first_machine_open.is_(True)
        )
        new_id = session.scalar(
            insert(ProviderEvent)
            .values(
                sg_event_id=seen,
                event=name,
                delivery_id=delivery,
                payload=redact_payload(event) if redact else event,
                occurred_at=occurred_at(event),
                received_at=now,
                first_of_kind=first,
                first_machine_open=first_machine,
            )
            .returning(ProviderEvent.id)
        )
        if new_id is not None:
            stored.append(new_id)
    return stored


def lock_deliveries(session: Session, deliveries: list[int | None]) -> None:
    """PostgreSQL: hold the advisory lock of each delivery's bucket until commit, taken in
    ascending key order in one statement (SQLite serialises writers anyway). A batch takes
    at most `LOCK_BUCKETS` locks, however many deliveries it names, so a large batch never
    runs the server's lock table out of slots; two deliveries sharing a bucket only wait
    for each other."""
    found = sorted({d % LOCK_BUCKETS for d in deliveries if d is not None})
    if not found or session.get_bind().dialect.name != "postgresql":
        return
    keys = func.unnest(found).table_valued(column("k", Integer)).render_derived(name="keys")
    locks = select(func.pg_advisory_xact_lock(DELIVERY_LOCK_CLASS, keys.c.k)).order_by(keys.c.k)
    session.execute(select(func.count()).select_from(locks.subquery()))


def _has(session: Session, delivery: int | None, condition: Any) -> bool:
    """Whether an event of `delivery` matching `condition` is stored already."""
    return bool(
        session.scalar(select(exists().where(ProviderEvent.delivery_id == delivery, condition)))
    )
