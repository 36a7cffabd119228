"""`enroll_contact` on PostgreSQL, on both of its paths (the one statement for a new
address, `drip.signup.first_signup`, and the general one): two signups of one address at
the same instant plan one email 1, and a new address gets the same rows either way."""

from __future__ import annotations

import threading
import time
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from drip.db import transaction, utcnow
from drip.events.contact_store import store_contact_event
from drip.models import Delivery, Enrollment
from drip.runtime import Runtime
from drip.signup import first_signup, service
from drip.signup.request import SignupRequest
from drip.signup.result import SignupResult
from drip.signup.service import enroll_contact
from drip.testing.threads import CheckedThread
from drip.webhooks.endpoints import add_endpoint
from drip.webhooks.outbox import pending_ids


@pytest.fixture(params=["one statement", "general"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test runs on both paths: the general one with the one statement turned off."""
    if request.param == "general":
        monkeypatch.setattr(service, "enroll_new_address", lambda *_, **__: None)
    return str(request.param)


def _enroll_in(session: Session, runtime: Runtime, email: str, now: datetime) -> SignupResult:
    return enroll_contact(
        session,
        SignupRequest(email=email, first_name="Ann", timezone="Europe/Paris", source="blog"),
        catalog=runtime.catalog,
        default_sequence="quick",
        now=now,
        queue_lease=60,
    )


def _enroll(runtime: Runtime, email: str, now: datetime) -> SignupResult:
    with transaction(runtime.sessions) as session:
        return _enroll_in(session, runtime, email, now)


def _count(runtime: Runtime, table: type[Any]) -> int:
    with transaction(runtime.sessions) as session:
        return session.scalar(select(func.count()).select_from(table)) or 0


def test_two_signups_of_one_address_at_one_instant_plan_one_email_1(
    runtime: Runtime, path: str
) -> None:
    # Given a signup of an address, not yet committed, at a frozen instant
    now = utcnow()
    second: list[SignupResult] = []
    started = threading.Event()

    def sign_up_again() -> None:
        started.set()
        second.append(_enroll(runtime, "twin@example.com", now))

    with transaction(runtime.sessions) as session:
        first = _enroll_in(session, runtime, "twin@example.com", now)
        # When a second signup of the address, at the same instant, starts meanwhile
        # (it waits on the first's row until the first commits)
        thread = CheckedThread(sign_up_again)
        thread.start()
        started.wait(5)
        time.sleep(0.3)
    thread.join(30)

    # Then the first enrolled it and the second is answered "already enrolled", cleanly
    assert first.enrolled
    assert first.delivery_to_enqueue is not None
    assert second == [SignupResult()]
    # And exactly one enrolment and one email 1 exist
    assert _count(runtime, Enrollment) == 1
    assert _count(runtime, Delivery) == 1


def test_a_second_signup_at_the_same_instant_after_the_first_committed(
    runtime: Runtime, path: str
) -> None:
    # Given an address signed up and committed at a frozen instant
    now = utcnow()
    assert _enroll(runtime, "again@example.com", now).enrolled
    # When it signs up again at that same instant
    again = _enroll(runtime, "again@example.com", now)
    # Then nothing changes and no second email 1 is planned
    assert again == SignupResult()
    assert _count(runtime, Delivery) == 1


#: Each table's rows as a signup leaves them, without the ids and times only a row's own
#: insert decides (serial ids, random public and event ids, the row's write time).
_ROWS = {
    "contacts": "SELECT email, email_hash, first_name, timezone, source, attributes::text,"
    " status, status_reason, consent_at, created_at, updated_at FROM contacts",
    "enrollments": "SELECT sequence_id, status, enrolled_at, ended_at, confirm_requested_at,"
    " run FROM enrollments",
    "deliveries": "SELECT sequence_id, step_id, resend_number, run, resend, status, due_at,"
    " lease_until, attempts, sent_at, provider_message_id, sequence_version,"
    " subject_variant, error FROM deliveries",
    "webhook_events": "SELECT endpoint_id, event_type, data::text, occurred_at, created_at,"
    " status, attempts, next_attempt_at, give_up_at, enqueued_at FROM webhook_events",
    "contact_events": "SELECT client_id, contact_id IS NOT NULL FROM contact_events",
}


def _snapshot(runtime: Runtime) -> dict[str, list[tuple[Any, ...]]]:
    with transaction(runtime.sessions) as session:
        return {
            table: sorted(tuple(row) for row in session.execute(text(query)))
            for table, query in _ROWS.items()
        }


def _wipe(runtime: Runtime) -> None:
    with transaction(runtime.sessions) as session:
        session.execute(text("TRUNCATE contacts, contact_events, webhook_events CASCADE"))


def test_a_new_address_gets_the_same_rows_on_both_paths(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an endpoint hearing contact.subscribed, and an event posted for the address
    # before drip knew it
    now = utcnow()
    with transaction(runtime.sessions) as session:
        add_endpoint(
            session,
            "http://127.0.0.1:9/hook",
            ["contact.subscribed"],
            "HOOK_SECRET",
            development=True,
            operator="test",
            now=now,
        )

    def sign_up() -> tuple[SignupResult, list[int]]:
        with transaction(runtime.sessions) as session:
            store_contact_event(
                session,
                client_id="order-1",
                email="new@example.com",
                name="purchased",
                properties={},
                occurred_at=now,
                now=now,
            )
        with transaction(runtime.sessions) as session:
            result = _enroll_in(session, runtime, "new@example.com", now)
            return result, pending_ids(session)

    # When the address signs up through the one statement, then (afresh) the general path
    fast, fast_outbox = sign_up()
    fast_rows = _snapshot(runtime)
    _wipe(runtime)
    monkeypatch.setattr(service, "enroll_new_address", lambda *_, **__: None)
    general, general_outbox = sign_up()

    # Then both answer alike and leave the same rows: contact, enrolment, a queued email 1,
    # one outbox row waiting for the commit, and the earlier event attached
    assert (fast.enrolled, general.enrolled) == (True, True)
    assert None not in (fast.delivery_to_enqueue, general.delivery_to_enqueue)
    assert len(fast_outbox) == len(general_outbox) == 1
    assert fast_rows == _snapshot(runtime)
    assert fast_rows["contact_events"] == [("order-1", True)]
    assert [row[5] for row in fast_rows["deliveries"]] == ["queued"]


def test_a_database_error_in_the_one_statement_is_raised_as_sqlalchemys(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the statement fails on the server (as when the connection drops mid-signup)
    monkeypatch.setattr(first_signup, "STATEMENT", "SELECT no_such_column FROM contacts")
    # When an address signs up, then it is SQLAlchemy's error, which the API answers 503
    with pytest.raises(DBAPIError):
        _enroll(runtime, "err@example.com", utcnow())
