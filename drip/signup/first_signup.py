"""A new address's signup in one statement (PostgreSQL): the path most signups take.

`enroll_contact` calls `enroll_new_address` first whenever consent would enrol a new
address at once (a sequence without double opt-in). One statement inserts the contact
(unless its address is known), and only if it did: attaches the events other apps posted
for the address, enrols it, plans step 1 and puts `contact.subscribed` in the webhook
outbox, the rows `enroll_contact`'s general path writes for a new address. A known
address makes the statement write nothing, and the general path runs in the same
transaction. Before it, the address's advisory lock is taken in a statement of its own,
so the events' UPDATE runs in a snapshot taken after any event stored for the address
meanwhile has committed (`drip.events.contact_store`). Both go in one round trip
(psycopg's pipeline mode) with the transaction's BEGIN.

The statement is sent through psycopg directly: the general path costs an ORM round trip
per row (a contact, an enrolment, a delivery, an outbox row), which made the signup's
database work most of the API's CPU time per request.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import psycopg
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from drip.contacts.identity import email_hash
from drip.db import utcnow
from drip.deliveries.leases import lease
from drip.deliveries.transitions import Move, transition
from drip.events.contact_store import ADDRESS_LOCK_CLASS, _lock_key
from drip.models.contact import new_public_id
from drip.schedule.planner import next_step, plan_due, subscriber_zone
from drip.sequences.definition import Sequence
from drip.signup.request import SignupRequest
from drip.signup.result import SignupResult
from drip.webhooks.events import EventType, new_event_id
from drip.webhooks.outbox import PENDING_IDS, insert_outbox_rows
from drip.webhooks.retries import RETRY_WINDOW

#: Contact, events, enrolment, step 1 and the outbox: what the general path writes for a
#: new address (`_contact_insert`, `attach_events`, `_enrollment_insert`, `plan_first`,
#: `emit`), each part only when the contact was inserted. (Built from constants: the
#: signup's values are parameters.)
STATEMENT = f"""
WITH contact AS (
    INSERT INTO contacts (public_id, email, email_hash, first_name, timezone, source,
                          attributes, status, created_at, updated_at)
    VALUES (%(public_id)s, %(email)s, %(email_hash)s, %(first_name)s, %(timezone)s,
            %(source)s, '{{}}', 'active', %(now)s, %(now)s)
    ON CONFLICT (email_hash) DO NOTHING
    RETURNING id
), attached AS (
    UPDATE contact_events SET contact_id = contact.id FROM contact
    WHERE contact_events.email_hash = %(email_hash)s AND contact_events.contact_id IS NULL
), enrollment AS (
    INSERT INTO enrollments (contact_id, sequence_id, status, enrolled_at, run)
    SELECT id, %(sequence)s, 'active', %(now)s, 0 FROM contact
    RETURNING id, contact_id, run
), delivery AS (
    INSERT INTO deliveries (enrollment_id, contact_id, sequence_id, step_id, resend_number,
                            run, resend, status, due_at, lease_until, attempts,
                            created_at, updated_at)
    SELECT id, contact_id, %(sequence)s, %(step)s, 0, run, false, %(status)s, %(due_at)s,
           %(lease_until)s, 0, %(written_at)s, %(written_at)s
    FROM enrollment
    RETURNING id
), outbox AS ({
    insert_outbox_rows(
        "contact",
        event_id="%(event_id)s",
        event_type="%(event_type)s",
        contact_id="contact.id",
        data="%(event_data)s::json",
        occurred_at="%(now)s",
        now="%(now)s",
        give_up_at="%(give_up_at)s",
    )
})
SELECT (SELECT id FROM contact), (SELECT id FROM delivery), ARRAY(SELECT id FROM outbox)
"""  # noqa: S608

#: `drip.events.contact_store.lock_address`'s lock, sent in the same round trip.
LOCK = "SELECT pg_advisory_xact_lock(%s, %s)"


def new_contact_fields(request: SignupRequest) -> dict[str, str | None]:
    """The columns a signup gives a new contact, besides its times and empty attributes."""
    return {
        "public_id": new_public_id(),
        "email": request.email,
        "email_hash": email_hash(request.email),
        "first_name": request.first_name,
        "timezone": request.timezone,
        "source": request.source,
    }


def enroll_new_address(
    session: Session,
    request: SignupRequest,
    *,
    sequence: Sequence,
    now: datetime,
    queue_lease: float,
) -> SignupResult | None:
    """Enrol a new address and plan its step 1 in one statement, in the session's
    transaction. None, with nothing written, when the address is known, the database is
    not PostgreSQL or the sequence has no step: the caller's general path decides then.

    Only for a signup that consent enrols at once when the address is new (no double
    opt-in): that is the caller's check.
    """
    step = next_step(sequence, set())
    if step is None or session.get_bind().dialect.name != "postgresql":
        return None
    due = plan_due(now, step, sequence, subscriber_zone(request.timezone, sequence))
    due_now = due <= now
    params = {
        **new_contact_fields(request),
        "now": now,
        "sequence": sequence.id,
        "step": step.id,
        "status": transition(Move.PLAN_NOW if due_now else Move.PLAN_LATER).target.value,
        "due_at": due,
        "lease_until": lease(now, queue_lease) if due_now else None,
        "written_at": utcnow(),
        "event_id": new_event_id(),
        "event_type": EventType.CONTACT_SUBSCRIBED.value,
        "event_data": json.dumps({"sequence": sequence.id}),
        "give_up_at": now + RETRY_WINDOW,
    }
    driver: Any = session.connection().connection.driver_connection
    try:
        # One round trip: BEGIN, the lock, then the statement in a snapshot taken after it.
        with driver.pipeline():
            driver.execute(LOCK, (ADDRESS_LOCK_CLASS, _lock_key(email_hash(request.email))))
            contact_id, delivery_id, outbox_ids = driver.execute(STATEMENT, params).fetchone()
    except psycopg.Error as exc:  # as SQLAlchemy raises it: the API answers 503 when down
        raise DBAPIError.instance(STATEMENT, params, exc, psycopg.Error) from exc
    if contact_id is None:
        return None
    if outbox_ids:
        session.info.setdefault(PENDING_IDS, []).extend(outbox_ids)
    return SignupResult(delivery_to_enqueue=delivery_id if due_now else None, enrolled=True)
