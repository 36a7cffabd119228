"""tracked links and subject tests: `link_clicks`, and the subject variant a row was sent with

`link_clicks` keeps one row per (delivery, link, human or machine) for clicks on `/l/`
links; `deliveries.subject_variant` is the variant of a step's subject test the row was
sent with (NULL for a step with one subject, and for rows sent before this revision).

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from drip.models.base import UTCDateTime

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("subject_variant", sa.Integer(), nullable=True))
    op.create_table(
        "link_clicks",
        sa.Column("id", BigId, nullable=False),
        sa.Column(
            "delivery_id",
            BigId,
            sa.ForeignKey(
                "deliveries.id",
                ondelete="CASCADE",
                name=op.f("fk_link_clicks_delivery_id_deliveries"),
            ),
            nullable=False,
        ),
        sa.Column("link_index", sa.Integer(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("human", sa.Boolean(), nullable=False),
        sa.Column("machine_reason", sa.String(16), nullable=True),
        sa.Column("clicked_at", UTCDateTime(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_link_clicks")),
        sa.UniqueConstraint(
            "delivery_id",
            "link_index",
            "human",
            name=op.f("uq_link_clicks_delivery_id_link_index_human"),
        ),
    )
    op.create_index("ix_link_clicks_delivery", "link_clicks", ["delivery_id"])


def downgrade() -> None:
    op.drop_index("ix_link_clicks_delivery", table_name="link_clicks")
    op.drop_table("link_clicks")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("subject_variant")
