"""one pending and one sent planned row per (enrollment, step), enforced by the database

A planned row is one the planner made: not a resend, not a confirmation. Two of them
pending for the same step would be two emails; two of them sent means one already went
twice. The partial unique indexes turn such a planning bug into a refused insert.

Existing data is checked first. Extra pending planned rows (all but the oldest) are
cancelled: cancelling a duplicate is what the index exists to force. Extra sent planned
rows cannot be unsent; all but the first are marked as resends (the funnel counts a step
once, as it should have been counted) with a note in `error`. Each repair is printed.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: The rows the planner makes: a resend or a confirmation is off the planned line.
PLANNED = "resend = false AND step_id <> '_confirm'"
PENDING = f"status IN ('scheduled', 'queued', 'sending') AND {PLANNED}"
SENT = f"status = 'sent' AND {PLANNED}"


def _extras(where: str) -> str:
    """The ids of every matching row but the first of its (enrollment, step). `where` is
    one of this module's constants, never input."""
    return (
        "SELECT id FROM (SELECT id, row_number() OVER "  # noqa: S608 - built from this module's constants
        "(PARTITION BY enrollment_id, step_id ORDER BY id) AS n "
        f"FROM deliveries WHERE {where}) AS ranked WHERE n > 1"
    )


def upgrade() -> None:
    bind = op.get_bind()
    pending = bind.execute(sa.text(_extras(PENDING))).scalars().all()
    if pending:
        print(f"0005: cancelling {len(pending)} duplicate pending planned rows: {pending[:20]}")
        bind.execute(
            sa.text(
                "UPDATE deliveries SET status = 'cancelled', lease_until = NULL, "  # noqa: S608 - built from this module's constants
                "error = 'cancelled by migration 0005: a second pending row of the same step' "
                f"WHERE id IN ({_extras(PENDING)})"
            )
        )
    sent = bind.execute(sa.text(_extras(SENT))).scalars().all()
    if sent:
        print(f"0005: marking {len(sent)} duplicate sent planned rows as resends: {sent[:20]}")
        bind.execute(
            sa.text(
                "UPDATE deliveries SET resend = true, "  # noqa: S608 - built from this module's constants
                "error = 'marked as a resend by migration 0005: the step had been sent already' "
                f"WHERE id IN ({_extras(SENT)})"
            )
        )
    op.create_index(
        "ux_deliveries_pending_planned",
        "deliveries",
        ["enrollment_id", "step_id"],
        unique=True,
        postgresql_where=sa.text(PENDING),
        sqlite_where=sa.text(PENDING),
    )
    op.create_index(
        "ux_deliveries_sent_planned",
        "deliveries",
        ["enrollment_id", "step_id"],
        unique=True,
        postgresql_where=sa.text(SENT),
        sqlite_where=sa.text(SENT),
    )


def downgrade() -> None:
    op.drop_index("ux_deliveries_sent_planned", table_name="deliveries")
    op.drop_index("ux_deliveries_pending_planned", table_name="deliveries")
