"""consent time: when a contact gave its consent, as an import records it

`contacts.consent_at` is the time the subscriber agreed to receive the emails, as the
file of an import (`drip contacts import`) states it: the proof of consent for an address
that never passed through drip's own signup form. Empty for contacts that signed up here
(their `created_at` is the time of their signup).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from drip.models.base import UTCDateTime

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("contacts") as batch:
        batch.add_column(sa.Column("consent_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("contacts") as batch:
        batch.drop_column("consent_at")
