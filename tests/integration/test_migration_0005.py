"""Migration 0005 checks existing data before it adds the one-planned-row indexes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from alembic import command

from drip.migrate import alembic_config
from tests.integration.conftest import PG_ADMIN_URL, _admin, _db_url

pytestmark = pytest.mark.integration


@pytest.fixture
def at_0004() -> Iterator[str]:
    """A fresh database migrated to 0004, before the indexes existed."""
    name = f"drip_m5_{uuid.uuid4().hex[:10]}"
    try:
        _admin(f"CREATE DATABASE {name}")
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL is not reachable at {PG_ADMIN_URL}: {exc}")
    url = _db_url(name)
    command.upgrade(alembic_config(url), "0004")
    yield url
    _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


ROW = (
    "INSERT INTO deliveries (id, enrollment_id, contact_id, sequence_id, step_id, resend_number,"
    " resend, status, due_at, attempts, created_at, updated_at) VALUES"
    " ({id}, 1, 1, 'quick', '{step}', {number}, {resend}, '{status}', now(), 0, now(), now())"
)


def test_duplicate_planned_rows_are_repaired_then_refused(at_0004: str) -> None:
    # Given the data the resend bug left: step 2 sent twice, step 3 pending twice
    rows = [
        (1, "welcome", 0, "false", "sent"),
        (2, "welcome", 1, "true", "sent"),  # a resend: off the line, left alone
        (3, "second", 0, "false", "sent"),
        (4, "second", 1, "false", "sent"),
        (5, "third", 0, "false", "scheduled"),
        (6, "third", 1, "false", "queued"),
    ]
    with psycopg.connect(at_0004, autocommit=True) as db:
        db.execute(
            "INSERT INTO contacts (id, public_id, email, email_hash, attributes, status,"
            " created_at, updated_at) VALUES (1, 'p1', 'a@example.com', 'h1', '{}', 'active',"
            " now(), now())"
        )
        db.execute(
            "INSERT INTO enrollments (id, contact_id, sequence_id, status, enrolled_at)"
            " VALUES (1, 1, 'quick', 'active', now())"
        )
        for id_, step, number, resend, status in rows:
            db.execute(  # type: ignore[call-overload]
                ROW.format(id=id_, step=step, number=number, resend=resend, status=status)
            )
    # When the migration runs
    command.upgrade(alembic_config(at_0004), "0005")
    # Then the later duplicates are repaired, the first of each kept
    with psycopg.connect(at_0004, autocommit=True) as db:
        found = db.execute("SELECT id, status, resend FROM deliveries ORDER BY id").fetchall()
        assert found == [
            (1, "sent", False),
            (2, "sent", True),
            (3, "sent", False),
            (4, "sent", True),  # marked as a resend: the step had gone already
            (5, "scheduled", False),
            (6, "cancelled", False),
        ]
        # And the database refuses a new duplicate from now on
        with pytest.raises(psycopg.errors.UniqueViolation):
            db.execute(ROW.format(id=7, step="third", number=2, resend="false", status="queued"))
        with pytest.raises(psycopg.errors.UniqueViolation):
            db.execute(ROW.format(id=8, step="second", number=2, resend="false", status="sent"))
