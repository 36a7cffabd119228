"""Store an event another app reports (`POST /v1/events`), once by the client's id.

The guarantee: the event is inserted while its contact's row is locked for update
(`drip.contacts.lifecycle.lock_contact`), and the request answers 202 only after commit. A
send batch holds that row for share across its provider calls, so the event waits for a
batch in flight, and every send whose check starts after the 202 sees the event: a goal
reached ends the sequence before another email of it leaves.

Idempotent forever: `client_id` is unique and the insert is `ON CONFLICT DO NOTHING`, so a
repeat (or a concurrent twin: PostgreSQL makes the second insert wait for the first to
commit) stores nothing and reports nothing new.

An address drip does not know: the event is kept, with the address's keyed hash and no
contact, and attached to the contact when that address signs up or is enrolled
(`attach_events`, called inside `enroll_contact`'s transaction). Both paths take one
transaction-scoped advisory lock on the address hash (PostgreSQL), so an event and a
signup of the same new address racing each other cannot leave the event unattached. An
event about a forgotten contact is stored redacted: its properties are dropped.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Integer, column, func, select, update
from sqlalchemy.orm import Session

from drip.contacts.identity import email_hash
from drip.contacts.lifecycle import lock_contact
from drip.contacts.privacy import REDACTED_PROPERTIES
from drip.db import upsert_statement
from drip.models import Contact, ContactEvent, ContactStatus

#: The first key of the advisory locks on an address hash (the second is from the hash).
ADDRESS_LOCK_CLASS = 0x6472_6970  # "drip"


def store_contact_event(
    session: Session,
    *,
    client_id: str,
    email: str,
    name: str,
    properties: dict[str, Any],
    occurred_at: datetime,
    now: datetime,
) -> int | None:
    """Insert the event unless its `client_id` is known; the new row's id, or None for a
    repeat. `email` is normalised. Locks the contact's row first: commit before answering."""
    hashed = email_hash(email)
    contact = lock_contact(session, email_hash=hashed)
    if contact is None:
        # Not known yet: serialise with a signup of the same address, then look again.
        lock_address(session, hashed)
        contact = lock_contact(session, email_hash=hashed)
    erased = contact is not None and (
        contact.email is None or contact.status is ContactStatus.FORGOTTEN
    )
    new_id: int | None = session.scalar(
        upsert_statement(session, ContactEvent)
        .values(
            client_id=client_id,
            email_hash=hashed,
            contact_id=contact.id if contact is not None else None,
            name=name,
            properties=REDACTED_PROPERTIES if erased else properties,
            occurred_at=occurred_at,
            received_at=now,
        )
        .on_conflict_do_nothing(index_elements=["client_id"])
        .returning(ContactEvent.id)
    )
    return new_id


def attach_events(session: Session, contact: Contact) -> list[int]:
    """Attach the events kept for the contact's address to it; their ids. Called in the
    transaction that inserts or touches the contact (one advisory lock, one UPDATE)."""
    lock_address(session, contact.email_hash)
    return list(
        session.scalars(
            update(ContactEvent)
            .where(ContactEvent.email_hash == contact.email_hash, ContactEvent.contact_id.is_(None))
            .values(contact_id=contact.id)
            .returning(ContactEvent.id)
        )
    )


def attach_events_many(session: Session, contacts: dict[str, int]) -> int:
    """`attach_events` for many new contacts at once (`drip contacts import`): `contacts`
    maps each address hash to its contact's id. The same advisory locks, taken in one
    statement in ascending order (two imports never deadlock), then one read and an update
    per event found; returns how many events were attached."""
    if not contacts:
        return 0
    hashes = sorted(contacts)
    if session.get_bind().dialect.name == "postgresql":
        keys = (
            func.unnest(sorted({_lock_key(h) for h in hashes}))
            .table_valued(column("k", Integer))
            .render_derived(name="keys")
        )
        locks = select(func.pg_advisory_xact_lock(ADDRESS_LOCK_CLASS, keys.c.k)).order_by(keys.c.k)
        session.execute(select(func.count()).select_from(locks.subquery()))
    pending = session.execute(
        select(ContactEvent.id, ContactEvent.email_hash).where(
            ContactEvent.email_hash.in_(hashes), ContactEvent.contact_id.is_(None)
        )
    ).all()
    for event_id, hashed in pending:
        session.execute(
            update(ContactEvent)
            .where(ContactEvent.id == event_id)
            .values(contact_id=contacts[hashed])
        )
    return len(pending)


def _lock_key(hashed: str) -> int:
    return int(hashed[:7], 16)


def lock_address(session: Session, hashed: str) -> None:
    """Hold a transaction-scoped advisory lock on an address hash (PostgreSQL; SQLite
    serialises writers anyway)."""
    if session.get_bind().dialect.name != "postgresql":
        return
    # A 31-bit number from the hash: two addresses sharing it only wait for each other.
    session.execute(select(func.pg_advisory_xact_lock(ADDRESS_LOCK_CLASS, _lock_key(hashed))))
