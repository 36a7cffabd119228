"""Events other apps report about a contact (`POST /v1/events`), stored once by the
client's id and applied to the contact's sequences by `drip.apply_contact_events`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from drip.db import utcnow
from drip.models.base import Base, BigId, UTCDateTime


class ContactEvent(Base):
    """One event about an address: attached to its contact when drip knows the address
    (or later, when it signs up), found by its keyed hash until then."""

    __tablename__ = "contact_events"
    __table_args__ = (
        # Send-time conditions and goals read a contact's events by name.
        Index("ix_contact_events_contact_name", "contact_id", "name"),
        # A signup attaches the events kept for its address: only unattached rows are read.
        Index(
            "ix_contact_events_unattached",
            "email_hash",
            postgresql_where=text("contact_id IS NULL"),
            sqlite_where=text("contact_id IS NULL"),
        ),
        # Events stored but not applied yet (their message was lost): read by the scheduler.
        Index(
            "ix_contact_events_unapplied",
            "received_at",
            postgresql_where=text("applied_at IS NULL AND contact_id IS NOT NULL"),
            sqlite_where=text("applied_at IS NULL AND contact_id IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    client_id: Mapped[str] = mapped_column(String(200), unique=True)
    email_hash: Mapped[str] = mapped_column(String(64))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"))
    name: Mapped[str] = mapped_column(String(64))
    properties: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    applied_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
