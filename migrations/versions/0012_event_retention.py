"""event retention: `provider_events` partitioned by month on PostgreSQL, seen event ids,
per-day counts, the days counted and the housekeeping clock

On PostgreSQL `provider_events` becomes a table partitioned by range of `received_at`
(one partition per month, a DEFAULT partition as a safety net, `drip.retention.partitions`).
A partitioned table's unique keys must contain the partition key, so `sg_event_id` is kept
unique by a new table, `provider_event_ids`, that `drip.events.store` inserts into first.
SQLite keeps its one table (and its unique `sg_event_id`) and gains the same new tables.

`first_of_kind` and `first_machine_open` mark the row the funnel counts for a delivery and
event name; they are filled here for the rows already stored.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from drip.models.base import UTCDateTime
from drip.retention.partitions import MONTHS_AHEAD, create_partition, month_of, next_month

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = "id, sg_event_id, event, delivery_id, payload, occurred_at, received_at, processed_at"


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    if postgresql:
        _partition_provider_events()
    else:
        with op.batch_alter_table("provider_events") as batch:
            batch.add_column(
                sa.Column("first_of_kind", sa.Boolean(), server_default=sa.false(), nullable=False)
            )
            batch.add_column(
                sa.Column(
                    "first_machine_open", sa.Boolean(), server_default=sa.false(), nullable=False
                )
            )
    _mark_firsts(postgresql)
    op.create_table(
        "provider_event_ids",
        sa.Column("sg_event_id", sa.String(200), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("sg_event_id", name=op.f("pk_provider_event_ids")),
    )
    op.create_index(
        op.f("ix_provider_event_ids_received_at"), "provider_event_ids", ["received_at"]
    )
    op.execute(
        "INSERT INTO provider_event_ids (sg_event_id, received_at) "
        "SELECT sg_event_id, received_at FROM provider_events"
    )
    op.create_table(
        "provider_event_counts",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("sequence_id", sa.String(100), nullable=False),
        sa.Column("step_id", sa.String(100), nullable=False),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("deliveries", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "day", "sequence_id", "step_id", "event", name=op.f("pk_provider_event_counts")
        ),
    )
    op.create_table(
        "provider_event_days",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("counted_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_provider_event_days")),
    )
    op.create_table(
        "housekeeping_runs",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("ran_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_housekeeping_runs")),
    )


def _partition_provider_events() -> None:
    """Swap the plain table for a partitioned one with the same rows, ids and sequence."""
    op.execute("ALTER TABLE provider_events RENAME TO provider_events_unpartitioned")
    op.execute(
        "ALTER TABLE provider_events_unpartitioned "
        "RENAME CONSTRAINT pk_provider_events TO pk_provider_events_unpartitioned"
    )
    op.execute(
        "ALTER TABLE provider_events_unpartitioned "
        "RENAME CONSTRAINT uq_provider_events_sg_event_id TO uq_provider_events_unpartitioned"
    )
    op.execute("DROP INDEX ix_provider_events_delivery_id")
    op.execute("DROP INDEX ix_provider_events_unprocessed")
    op.execute("ALTER SEQUENCE provider_events_id_seq OWNED BY NONE")
    op.execute(
        """
        CREATE TABLE provider_events (
            id BIGINT NOT NULL DEFAULT nextval('provider_events_id_seq'),
            sg_event_id VARCHAR(200) NOT NULL,
            event VARCHAR(32) NOT NULL,
            delivery_id BIGINT,
            payload JSON NOT NULL,
            occurred_at TIMESTAMP WITH TIME ZONE,
            received_at TIMESTAMP WITH TIME ZONE NOT NULL,
            processed_at TIMESTAMP WITH TIME ZONE,
            first_of_kind BOOLEAN NOT NULL DEFAULT false,
            first_machine_open BOOLEAN NOT NULL DEFAULT false,
            CONSTRAINT pk_provider_events PRIMARY KEY (id, received_at)
        ) PARTITION BY RANGE (received_at)
        """
    )
    op.execute("ALTER SEQUENCE provider_events_id_seq OWNED BY provider_events.id")
    op.execute("CREATE INDEX ix_provider_events_delivery_id ON provider_events (delivery_id)")
    op.execute(
        "CREATE INDEX ix_provider_events_unprocessed ON provider_events (received_at) "
        "WHERE processed_at IS NULL"
    )
    # Rows arrive in received_at order: a BRIN index finds a day's range for a few pages.
    op.execute(
        "CREATE INDEX ix_provider_events_received_at ON provider_events USING brin (received_at)"
    )
    op.execute("CREATE TABLE provider_events_default PARTITION OF provider_events DEFAULT")
    bind = op.get_bind()
    oldest = bind.execute(
        sa.text("SELECT min(received_at) FROM provider_events_unpartitioned")
    ).scalar()
    now = datetime.now(UTC)
    month = month_of(min(oldest, now) if oldest else now)
    last = month_of(now)
    for _ in range(MONTHS_AHEAD):
        last = next_month(last)
    while month <= last:
        create_partition(bind, month)
        month = next_month(month)
    op.execute(
        f"INSERT INTO provider_events ({COLUMNS}) "  # noqa: S608
        f"SELECT {COLUMNS} FROM provider_events_unpartitioned"
    )
    op.execute("DROP TABLE provider_events_unpartitioned")


def _mark_firsts(postgresql: bool) -> None:
    """Mark each delivery's first event per name, and its first machine open."""
    machine = (
        "(payload->>'sg_machine_open') = 'true'"
        if postgresql
        else "json_extract(payload, '$.sg_machine_open') = 1"
    )
    true = "true" if postgresql else "1"
    op.execute(
        f"UPDATE provider_events SET first_of_kind = {true} WHERE id IN ("  # noqa: S608
        " SELECT id FROM (SELECT id, row_number() OVER ("
        "  PARTITION BY delivery_id, event ORDER BY received_at, id) AS n"
        "  FROM provider_events WHERE delivery_id IS NOT NULL) AS ranked WHERE n = 1)"
    )
    op.execute(
        f"UPDATE provider_events SET first_machine_open = {true} WHERE id IN ("  # noqa: S608
        " SELECT id FROM (SELECT id, row_number() OVER ("
        "  PARTITION BY delivery_id ORDER BY received_at, id) AS n"
        f"  FROM provider_events WHERE delivery_id IS NOT NULL AND event = 'open' AND {machine})"
        "  AS ranked WHERE n = 1)"
    )


def downgrade() -> None:
    op.drop_table("housekeeping_runs")
    op.drop_table("provider_event_days")
    op.drop_table("provider_event_counts")
    op.drop_index(op.f("ix_provider_event_ids_received_at"), table_name="provider_event_ids")
    op.drop_table("provider_event_ids")
    if op.get_bind().dialect.name != "postgresql":
        with op.batch_alter_table("provider_events") as batch:
            batch.drop_column("first_machine_open")
            batch.drop_column("first_of_kind")
        return
    op.execute("ALTER TABLE provider_events RENAME TO provider_events_partitioned")
    op.execute("ALTER SEQUENCE provider_events_id_seq OWNED BY NONE")
    op.execute(
        "ALTER TABLE provider_events_partitioned "
        "RENAME CONSTRAINT pk_provider_events TO pk_provider_events_partitioned"
    )
    op.execute("DROP INDEX ix_provider_events_delivery_id")
    op.execute("DROP INDEX ix_provider_events_unprocessed")
    op.execute("DROP INDEX ix_provider_events_received_at")
    op.execute(
        """
        CREATE TABLE provider_events (
            id BIGINT NOT NULL DEFAULT nextval('provider_events_id_seq'),
            sg_event_id VARCHAR(200) NOT NULL,
            event VARCHAR(32) NOT NULL,
            delivery_id BIGINT,
            payload JSON NOT NULL,
            occurred_at TIMESTAMP WITH TIME ZONE,
            received_at TIMESTAMP WITH TIME ZONE NOT NULL,
            processed_at TIMESTAMP WITH TIME ZONE,
            CONSTRAINT pk_provider_events PRIMARY KEY (id),
            CONSTRAINT uq_provider_events_sg_event_id UNIQUE (sg_event_id)
        )
        """
    )
    op.execute("ALTER SEQUENCE provider_events_id_seq OWNED BY provider_events.id")
    op.execute(
        f"INSERT INTO provider_events ({COLUMNS}) "  # noqa: S608
        f"SELECT {COLUMNS} FROM provider_events_partitioned ON CONFLICT DO NOTHING"
    )
    op.execute("DROP TABLE provider_events_partitioned")
    op.execute("CREATE INDEX ix_provider_events_delivery_id ON provider_events (delivery_id)")
    op.execute(
        "CREATE INDEX ix_provider_events_unprocessed ON provider_events (received_at) "
        "WHERE processed_at IS NULL"
    )
