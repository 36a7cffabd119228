"""The counting rules' SQL, checked without a server: every pending status is one measure,
the funnel's `scheduled` column, and every other status its own; the row-level triggers
of migration 0015 install on SQLite and fire only when their WHEN clause holds."""

from __future__ import annotations

import sqlite3

from drip.models import DeliveryStatus
from drip.reports.counting import (
    PENDING_MEASURE,
    create_statements,
    pending_as_scheduled,
    row_triggers,
)
from drip.reports.funnel import MEASURE_COLUMNS


def test_pending_statuses_are_one_measure_the_funnel_shows_as_scheduled() -> None:
    db = sqlite3.connect(":memory:")
    for status in DeliveryStatus:
        (measure,) = db.execute(
            f"SELECT {pending_as_scheduled('r')} FROM (SELECT ? AS status) r",  # noqa: S608
            [status.value],
        ).fetchone()
        pending = status in (
            DeliveryStatus.SCHEDULED,
            DeliveryStatus.QUEUED,
            DeliveryStatus.SENDING,
        )
        assert measure == (PENDING_MEASURE if pending else status.value)
    assert MEASURE_COLUMNS[PENDING_MEASURE] == "scheduled"


def test_a_move_within_pending_appends_no_delta_and_a_send_does() -> None:
    # Given the tables the triggers read, with the triggers of 0015
    db = sqlite3.connect(":memory:")
    db.executescript(
        """
        CREATE TABLE contacts (id INTEGER PRIMARY KEY, status TEXT);
        CREATE TABLE enrollments (id INTEGER PRIMARY KEY, contact_id INT, status TEXT, run INT);
        CREATE TABLE deliveries (id INTEGER PRIMARY KEY, enrollment_id INT, contact_id INT,
            created_at TEXT, sequence_id TEXT, step_id TEXT, status TEXT, resend BOOLEAN,
            sent_at TEXT, run INT);
        CREATE TABLE link_clicks (id INTEGER PRIMARY KEY, delivery_id INT, human BOOLEAN);
        CREATE TABLE funnel_attributions (delivery_id INT, measure TEXT, enrollment_id INT,
            day TEXT, sequence_id TEXT, step_id TEXT, PRIMARY KEY (delivery_id, measure));
        CREATE TABLE delivery_count_deltas (id INTEGER PRIMARY KEY, day TEXT, sequence_id TEXT,
            step_id TEXT, measure TEXT, n INT);
        INSERT INTO contacts VALUES (1, 'active');
        INSERT INTO enrollments VALUES (1, 1, 'active', 0);
        """
    )
    for statement in create_statements("sqlite", row_triggers("sqlite")):
        db.execute(statement)
    db.execute(
        "INSERT INTO deliveries VALUES (1, 1, 1, '2026-06-01 09:00:00', 'quick', 'welcome',"
        " 'scheduled', 0, NULL, 0)"
    )

    def deltas() -> list[tuple[str, int]]:
        return db.execute("SELECT measure, n FROM delivery_count_deltas ORDER BY id").fetchall()

    assert deltas() == [("scheduled", 1)]
    # When it is claimed, then claimed to send: nothing is appended
    db.execute("UPDATE deliveries SET status = 'queued'")
    db.execute("UPDATE deliveries SET status = 'sending'")
    assert deltas() == [("scheduled", 1)]
    # When it is sent: -1 scheduled, +1 sent
    db.execute("UPDATE deliveries SET status = 'sent', sent_at = '2026-06-01 09:01:00'")
    assert sorted(deltas()[1:]) == [("scheduled", -1), ("sent", 1)]
