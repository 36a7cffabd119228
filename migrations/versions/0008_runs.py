"""runs: an enrolment may start again (re-entry); each run's planned rows are its own

`enrollments.run` counts the enrolment's runs (0 for the first); each delivery carries
the run it was planned in. The one-planned-row indexes of 0005 now hold per run, so a
second run may send step 1 again while a planning bug within a run is still refused.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PLANNED = "resend = false AND step_id <> '_confirm'"
PENDING = f"status IN ('scheduled', 'queued', 'sending') AND {PLANNED}"
SENT = f"status = 'sent' AND {PLANNED}"


def _indexes(*columns: str) -> None:
    for name, where in (
        ("ux_deliveries_pending_planned", PENDING),
        ("ux_deliveries_sent_planned", SENT),
    ):
        op.create_index(
            name,
            "deliveries",
            list(columns),
            unique=True,
            postgresql_where=sa.text(where),
            sqlite_where=sa.text(where),
        )


def upgrade() -> None:
    with op.batch_alter_table("enrollments") as batch:
        batch.add_column(sa.Column("run", sa.Integer(), server_default="0", nullable=False))
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("run", sa.Integer(), server_default="0", nullable=False))
    op.drop_index("ux_deliveries_sent_planned", table_name="deliveries")
    op.drop_index("ux_deliveries_pending_planned", table_name="deliveries")
    _indexes("enrollment_id", "run", "step_id")


def downgrade() -> None:
    op.drop_index("ux_deliveries_sent_planned", table_name="deliveries")
    op.drop_index("ux_deliveries_pending_planned", table_name="deliveries")
    _indexes("enrollment_id", "step_id")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("run")
    with op.batch_alter_table("enrollments") as batch:
        batch.drop_column("run")
