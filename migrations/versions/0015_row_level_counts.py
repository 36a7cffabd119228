# ruff: noqa: S608 - every statement here is built from constants, never input.
"""delivery counts: row-level triggers that fire only when a count may change

The triggers of 0013 were statement-level on PostgreSQL and ran three statements for every
statement that touched `deliveries`, even a move that changed no count (the tick's claim,
a renew, the worker's claim to send). They are replaced by the row-level triggers of
`drip.reports.counting.row_triggers`, whose WHEN clauses skip a row whose counted key did
not move, and whose attribution runs only when a row became or stopped being sent for an
enrolment that is converted or whose contact unsubscribed. Every pending status now counts
under the one measure `scheduled` (the funnel's column): the kept `queued` and `sending`
counts and deltas are merged into it. On PostgreSQL `deliveries` is locked first, so no
row moves between the merge and the new triggers.

Downgrade: the pending rows not scheduled are taken out of `scheduled` into their own
status again (from a scan of them), and 0013's triggers come back.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03
"""

from collections.abc import Sequence

from alembic import op

from drip.reports.counting import (
    DELIVERIES,
    PENDING_MEASURE,
    create_statements,
    drop_statements,
    listed,
    row_triggers,
    tally,
    triggers,
)

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: The pending statuses that had a measure of their own before.
MERGED = listed(["queued", "sending"])
KEY = "day, sequence_id, step_id"


def _lock(dialect: str) -> None:
    if dialect == "postgresql":
        # Writers wait until this commits: no row moves between the merge and the triggers.
        op.execute("LOCK TABLE deliveries IN SHARE ROW EXCLUSIVE MODE")


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    _lock(dialect)
    for statement in drop_statements(dialect, triggers(dialect)):
        op.execute(statement)
    op.execute(
        f"INSERT INTO delivery_counts ({KEY}, measure, n) "
        f"SELECT {KEY}, '{PENDING_MEASURE}', sum(n) FROM delivery_counts"
        f" WHERE measure IN ({MERGED}) GROUP BY {KEY}"
        " ON CONFLICT (day, sequence_id, step_id, measure)"
        " DO UPDATE SET n = delivery_counts.n + excluded.n"
    )
    op.execute(f"DELETE FROM delivery_counts WHERE measure IN ({MERGED})")
    op.execute(
        f"UPDATE delivery_count_deltas SET measure = '{PENDING_MEASURE}'"
        f" WHERE measure IN ({MERGED})"
    )
    for statement in create_statements(dialect, row_triggers(dialect)):
        op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    _lock(dialect)
    for statement in drop_statements(dialect, row_triggers(dialect)):
        op.execute(statement)
    moved = tally(DELIVERIES, dialect, DELIVERIES.table, where=f"r.status IN ({MERGED})")
    op.execute(
        f"INSERT INTO delivery_count_deltas ({KEY}, measure, n) "
        f"SELECT d, s, t, m, c FROM ({moved}) u "
        f"UNION ALL SELECT d, s, t, '{PENDING_MEASURE}', -c FROM ({moved}) v"
    )
    for statement in create_statements(dialect, triggers(dialect)):
        op.execute(statement)
