"""API keys, events from other apps, and the answers to idempotent API requests

`api_keys` holds a SHA-256 of each key (never the key), `contact_events` the events other
apps post (`POST /v1/events`, unique by the client's id), `api_requests` the answer given
to each idempotent request (`POST /v1/enrollments`), so a repeat gets it again.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from drip.models.base import UTCDateTime

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", ID, nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("last_used_at", UTCDateTime(), nullable=True),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("prefix", name=op.f("uq_api_keys_prefix")),
    )
    op.create_table(
        "api_requests",
        sa.Column("id", ID, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("client_id", sa.String(length=200), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("answer", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_requests")),
        sa.UniqueConstraint("kind", "client_id", name=op.f("uq_api_requests_kind_client_id")),
    )
    op.create_table(
        "contact_events",
        sa.Column("id", ID, nullable=False),
        sa.Column("client_id", sa.String(length=200), nullable=False),
        sa.Column("email_hash", sa.String(length=64), nullable=False),
        sa.Column("contact_id", ID, nullable=True),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("properties", sa.JSON(), nullable=False),
        sa.Column("occurred_at", UTCDateTime(), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("applied_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_contact_events_contact_id_contacts"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact_events")),
        sa.UniqueConstraint("client_id", name=op.f("uq_contact_events_client_id")),
    )
    op.create_index(
        "ix_contact_events_contact_name", "contact_events", ["contact_id", "name"], unique=False
    )
    op.create_index(
        "ix_contact_events_unattached",
        "contact_events",
        ["email_hash"],
        unique=False,
        postgresql_where=sa.text("contact_id IS NULL"),
        sqlite_where=sa.text("contact_id IS NULL"),
    )
    op.create_index(
        "ix_contact_events_unapplied",
        "contact_events",
        ["received_at"],
        unique=False,
        postgresql_where=sa.text("applied_at IS NULL AND contact_id IS NOT NULL"),
        sqlite_where=sa.text("applied_at IS NULL AND contact_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_contact_events_unapplied", table_name="contact_events")
    op.drop_index("ix_contact_events_unattached", table_name="contact_events")
    op.drop_index("ix_contact_events_contact_name", table_name="contact_events")
    op.drop_table("contact_events")
    op.drop_table("api_requests")
    op.drop_table("api_keys")
