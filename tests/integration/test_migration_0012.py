"""Migration 0012 keeps the provider events already stored, on PostgreSQL (moved into
monthly partitions) and SQLite: the same rows and ids, each delivery's first event of a
name marked, every id in `provider_event_ids`; and it goes back down with the rows."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic import command
from sqlalchemy import text

from drip.db import create_db_engine
from drip.migrate import alembic_config

#: (id, given in order; sg_event_id, event, delivery_id, machine open, received_at): two
#: opens of delivery 7 a month apart (the first is marked), a machine open after a person's,
#: and an event without a delivery.
ROWS = [
    (1, "a", "open", 7, False, datetime(2026, 9, 30, 23, tzinfo=UTC)),
    (2, "b", "open", 7, False, datetime(2026, 10, 2, tzinfo=UTC)),
    (3, "c", "open", 8, False, datetime(2026, 10, 3, tzinfo=UTC)),
    (4, "d", "open", 8, True, datetime(2026, 10, 4, tzinfo=UTC)),
    (5, "e", "delivered", None, False, datetime(2026, 10, 5, tzinfo=UTC)),
]


def test_0012_moves_the_stored_events_marks_the_firsts_and_goes_back(
    empty_database: str,
) -> None:
    config = alembic_config(empty_database)
    command.upgrade(config, "0011")
    engine = create_db_engine(empty_database)
    postgresql = engine.dialect.name == "postgresql"
    try:
        with engine.begin() as connection:
            for _, sg, name, delivery, machine, at in ROWS:
                payload = f'{{"event": "{name}", "sg_machine_open": {str(machine).lower()}}}'
                connection.execute(
                    text(
                        "INSERT INTO provider_events (sg_event_id, event, delivery_id,"
                        " payload, received_at) VALUES (:sg, :name, :d, :p, :at)"
                    ),
                    {"sg": sg, "name": name, "d": delivery, "p": payload, "at": at},
                )
        command.upgrade(config, "0012")
        with engine.connect() as connection:
            marked = connection.execute(
                text(
                    "SELECT id, first_of_kind, first_machine_open FROM provider_events ORDER BY id"
                )
            ).all()
            assert [(i, bool(f), bool(m)) for i, f, m in marked] == [
                (1, True, False),
                (2, False, False),
                (3, True, False),
                (4, False, True),
                (5, False, False),
            ]
            ids = connection.execute(text("SELECT count(*) FROM provider_event_ids")).scalar()
            assert ids == len(ROWS)
            if postgresql:
                where = connection.execute(
                    text("SELECT tableoid::regclass::text FROM provider_events WHERE id IN (1, 2)")
                ).scalars()
                assert sorted(where) == ["provider_events_y2026m09", "provider_events_y2026m10"]
                # New rows still take ids after the old ones: the same sequence.
                next_id = connection.execute(
                    text("SELECT nextval('provider_events_id_seq')")
                ).scalar()
                assert next_id == len(ROWS) + 1
        command.downgrade(config, "0011")
        with engine.connect() as connection:
            count = connection.execute(text("SELECT count(*) FROM provider_events")).scalar()
            assert count == len(ROWS)
    finally:
        engine.dispose()
